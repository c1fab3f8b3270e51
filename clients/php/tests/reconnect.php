<?php
// A persistent connection across a herald restart: php reconnect.php TEXT_ADDR UID
// Pushes, says "pushed", waits for "go" on stdin (herald was restarted on the
// same port meanwhile), then pushes again on its old client.

declare(strict_types=1);

require __DIR__ . '/check.php';

$c = new Herald\Client(arg(1));
$uid = arg(2);
same($c->push($uid, ['n' => 1]), true, 'the first push');
echo "pushed\n";
same(fgets(STDIN), "go\n", 'the test says go');
same($c->push($uid, ['n' => 2]), true, 'a push after the restart');
same($c->pipeline(fn (Herald\Pipeline $p) => $p->push($uid, ['n' => 3])->online($uid)), [true, 1], 'a pipeline after it');
echo "ok\n";
