<?php
// The seeds' flow through the client: php seed_flow.php TEXT_ADDR
// tests/php_client.rs bound uid1 (two tabs), uid2 and 42, and checks what they received.

declare(strict_types=1);

require __DIR__ . '/check.php';

$c = new Herald\Client(arg(1));
same($c->push('uid1', ['percent' => '88%']), true, 'push to uid1');
same($c->push('nobody', ['percent' => '88%']), false, 'push to an offline uid');
same($c->push('uid1', ['uid' => 'uid2', 'note' => 'the uid argument wins']), true, 'push with a uid in $fields');
same($c->push(42, ['n' => 1]), true, 'push to a numeric uid');
same($c->push('uid1', ['text' => 'héllo wörld', 'url' => 'https://example.com/a/b']), true, 'unicode and slashes');
same($c->online('uid1'), 2, 'online uid1 (two tabs)');
same($c->online('uid2'), 1, 'online uid2');
same($c->online(42), 1, 'online 42');
same($c->online('nobody'), 0, 'online of an offline uid');
same($c->count(), ['uids' => 3, 'connections' => 4], 'count');
same($c->pushMany(['uid1', 'uid2', 'nobody'], ['m' => 'hi']), 3, 'pushMany: connections reached');
same($c->pushMany(['nobody', 'ghost']), 0, 'pushMany to offline uids');
same($c->broadcast(['m' => 'news']), 4, 'broadcast');
echo "ok\n";
