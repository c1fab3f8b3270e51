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
foreach ([['news' => true], 'news', ['bad topic'], ['a%*'], [7], ['news', ['room']], [str_repeat('x', 65) . '*']] as $topics) {
    $e = throws(
        InvalidArgumentException::class,
        fn () => Herald\Token::mint($secret, $uid, 60, ['topics' => $topics]),
        'the topics claim ' . json_encode($topics),
    );
    check(str_contains($e->getMessage(), '"topics"'), 'the message names the claim: ' . $e->getMessage());
}

// tests/php_client.rs subscribes with this token to news, room.7 and admin.
$topics = ['news', 'room.*'];
$token = Herald\Token::mint($secret, $uid, 120, ['aud' => $aud, 'iss' => $iss, 'topics' => $topics]);
[$head, $body, $sig] = explode('.', $token);
$decode = fn (string $part) => json_decode(base64_decode(strtr($part, '-_', '+/')), true, 8, JSON_THROW_ON_ERROR);
same($decode($head), ['alg' => 'HS256', 'typ' => 'JWT'], 'the header');
$claims = $decode($body);
same([$claims['sub'], $claims['aud'], $claims['iss'], $claims['topics']], [$uid, $aud, $iss, $topics], 'the claims');
check(str_contains(base64_decode(strtr($body, '-_', '+/')), '"topics":["news","room.*"]'), 'topics is a JSON list');
$all = Herald\Token::mint($secret, $uid, 60, ['topics' => ['*', str_repeat('x', 64) . '*', 'a*']]);
same($decode(explode('.', $all)[1])['topics'], ['*', str_repeat('x', 64) . '*', 'a*'], 'prefix patterns');
same($claims['exp'] - $claims['iat'], 120, 'exp is iat + ttl');
check(abs($claims['iat'] - time()) <= 1, 'iat is now');
$mac = rtrim(strtr(base64_encode(hash_hmac('sha256', "$head.$body", $secret, true)), '+/', '-_'), '=');
same($sig, $mac, 'the HS256 signature');
echo $token, "\n";
