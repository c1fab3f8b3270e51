# Mints a herald uid token (an HS256 JWT) with PyJWT (pip install pyjwt).
#   HERALD_AUTH_SECRET=... python3 mint.py uid1
import os
import sys
import time

import jwt


def herald_token(uid, secret, ttl=60):
    now = int(time.time())
    return jwt.encode({"sub": uid, "iat": now, "exp": now + ttl}, secret, algorithm="HS256")


print(herald_token(sys.argv[1], os.environ["HERALD_AUTH_SECRET"]))
