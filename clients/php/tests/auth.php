<?php
// The API token: php auth.php TEXT_ADDR API_TOKEN UID
// tests/php_client.rs bound UID with a token minted by mint.php.

declare(strict_types=1);

require __DIR__ . '/check.php';

[$addr, $token, $uid] = [arg(1), arg(2), arg(3)];

$c = new Herald\Client($addr, ['token' => $token]);
same($c->push($uid, ['m' => 'with the token']), true, 'push with the right token');
same($c->pipeline(fn (Herald\Pipeline $p) => $p->online($uid)->push('nobody')), [1, false], 'a pipeline after the token');

$start = microtime(true);
$wrong = new Herald\Client($addr, ['token' => $token . '-wrong']);
$e = throws(Herald\AuthException::class, fn () => $wrong->push($uid, ['m' => 'never']), 'a wrong token');
check($e instanceof Herald\ServerError, 'an AuthException is a ServerError');
same($e->reason, 'unauthorized', 'the reason');
check(str_contains($e->getMessage(), $addr), 'the message names the address: ' . $e->getMessage());
check(str_contains($e->getMessage(), 'API token'), 'the message says what was refused: ' . $e->getMessage());
check(!str_contains($e->getMessage() . $e->request, $token), 'the token is not in the exception');
check(microtime(true) - $start < 1.0, 'a refused token is not retried');

$none = new Herald\Client($addr);
$e = throws(
    Herald\AuthException::class,
    fn () => $none->pipeline(fn (Herald\Pipeline $p) => $p->push($uid)->push($uid)->push($uid)),
    'no token',
);
check(str_contains($e->getMessage(), '"token"'), 'the message names the option: ' . $e->getMessage());
echo "ok\n";
