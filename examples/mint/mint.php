<?php
// Mints a herald uid token (an HS256 JWT) with PHP's own hash_hmac.
//   HERALD_AUTH_SECRET=... php mint.php uid1
function b64url(string $s): string
{
    return rtrim(strtr(base64_encode($s), '+/', '-_'), '=');
}

function herald_token(string $uid, string $secret, int $ttl = 60): string
{
    $head = b64url(json_encode(['alg' => 'HS256', 'typ' => 'JWT']));
    $body = b64url(json_encode(['sub' => $uid, 'iat' => time(), 'exp' => time() + $ttl]));
    $sig = b64url(hash_hmac('sha256', "$head.$body", $secret, true));
    return "$head.$body.$sig";
}

echo herald_token($argv[1], getenv('HERALD_AUTH_SECRET')), "\n";
