<?php
// herald's `error` replies: php errors.php TEXT_ADDR
// tests/php_client.rs bound uid1 and checks that one connection served it all.

declare(strict_types=1);

require __DIR__ . '/check.php';

$c = new Herald\Client(arg(1));

$e = throws(Herald\ServerError::class, fn () => $c->push('', ['m' => 1]), 'an empty uid');
same($e->reason, 'empty uid', 'the reason');
same($e->request, '{"uid":"","m":1}', 'the refused line');
check(str_contains($e->getMessage(), 'error empty uid'), 'the message: ' . $e->getMessage());
same($c->push('uid1', ['after' => 'an error']), true, 'the connection after an error');

$e = throws(Herald\ServerError::class, fn () => $c->push('uid1', ['big' => str_repeat('x', 70000)]), 'a line too long');
same($e->reason, 'line too long (max 65536 bytes)', 'the reason');
$e = throws(Herald\ServerError::class, fn () => $c->push('uid1', ['all' => true]), 'a second routing field');
same($e->reason, 'use exactly one of "uid", "uids", "all", "topic", "online", "count", "join", "leave", "drop", "presence", "members", "kick" (join and leave take "uid" or "uids" besides)', 'the reason');
same($c->online('uid1'), 1, 'the connection after more errors');

// In a pipeline an error takes its slot and the other results are kept.
$r = $c->pipeline(function (Herald\Pipeline $p) {
    $p->push('uid1', ['n' => 1])->push('')->online('uid1')->pushMany([])->count()->broadcast(['m' => 'x']);
});
same(count($r), 6, 'six results');
same($r[0], true, 'a push');
check($r[1] instanceof Herald\ServerError && $r[1]->reason === 'empty uid', 'slot 1: ' . var_export($r[1], true));
same($r[2], 1, 'online');
check($r[3] instanceof Herald\ServerError && $r[3]->reason === '"uids" is an empty list', 'slot 3');
same($r[4], ['uids' => 1, 'connections' => 1], 'count');
same($r[5], 1, 'broadcast');

// What cannot be encoded is refused before anything is sent.
throws(JsonException::class, fn () => $c->push('uid1', ['bad' => "\xff"]), 'invalid UTF-8');
same($c->pipeline(fn () => null), [], 'an empty pipeline');
throws(InvalidArgumentException::class, fn () => new Herald\Client(arg(1), ['retry' => 1]), 'an unknown option');
echo "ok\n";
