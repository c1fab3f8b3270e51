<?php
// Prints a uid token: php mint.php SECRET UID AUDIENCE ISSUER
// (after checking what Herald\Token::mint refuses and what it writes).

declare(strict_types=1);

require __DIR__ . '/check.php';

[$secret, $uid, $aud, $iss] = [arg(1), arg(2), arg(3), arg(4)];

throws(InvalidArgumentException::class, fn () => Herald\Token::mint('short', $uid), 'a short secret');
throws(InvalidArgumentException::class, fn () => Herald\Token::mint($secret, ''), 'an empty uid');
throws(InvalidArgumentException::class, fn () => Herald\Token::mint($secret, $uid, 0), 'a ttl of 0');
throws(InvalidArgumentException::class, fn () => Herald\Token::mint($secret, $uid, 60, ['sub' => 'admin']), 'sub in the claims');

$token = Herald\Token::mint($secret, $uid, 120, ['aud' => $aud, 'iss' => $iss]);
[$head, $body, $sig] = explode('.', $token);
$decode = fn (string $part) => json_decode(base64_decode(strtr($part, '-_', '+/')), true, 8, JSON_THROW_ON_ERROR);
same($decode($head), ['alg' => 'HS256', 'typ' => 'JWT'], 'the header');
$claims = $decode($body);
same([$claims['sub'], $claims['aud'], $claims['iss']], [$uid, $aud, $iss], 'the claims');
same($claims['exp'] - $claims['iat'], 120, 'exp is iat + ttl');
check(abs($claims['iat'] - time()) <= 1, 'iat is now');
$mac = rtrim(strtr(base64_encode(hash_hmac('sha256', "$head.$body", $secret, true)), '+/', '-_'), '=');
same($sig, $mac, 'the HS256 signature');
echo $token, "\n";
