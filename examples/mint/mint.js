// Mints a herald uid token (an HS256 JWT) with jsonwebtoken (npm install jsonwebtoken).
//   HERALD_AUTH_SECRET=... node mint.js uid1
const jwt = require("jsonwebtoken");

function heraldToken(uid, secret, ttl = 60) {
  // jsonwebtoken adds iat; expiresIn sets exp.
  return jwt.sign({ sub: uid }, secret, { algorithm: "HS256", expiresIn: ttl });
}

console.log(heraldToken(process.argv[2], process.env.HERALD_AUTH_SECRET));
