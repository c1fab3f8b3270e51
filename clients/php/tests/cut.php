<?php
// A pipeline that outlives its herald: php cut.php TEXT_ADDR UID N
// Connects, says "connected", waits for "go", then pipelines N pushes (each
// with its sequence number); tests/php_client.rs stops that herald meanwhile,
// and another one on the same port (--reuse-port) takes the rest.

declare(strict_types=1);

require __DIR__ . '/check.php';

[$addr, $uid, $n] = [arg(1), arg(2), (int) arg(3)];
$c = new Herald\Client($addr);
same($c->online($uid), 1, 'online on the first herald');
echo "connected\n";
same(fgets(STDIN), "go\n", 'the test says go');
$pad = str_repeat('x', 100);
$start = microtime(true);
$r = $c->pipeline(function (Herald\Pipeline $p) use ($uid, $n, $pad) {
    for ($i = 0; $i < $n; $i++) {
        $p->push($uid, ['seq' => $i, 'pad' => $pad]);
    }
});
same(count($r), $n, 'one result per line');
foreach ($r as $i => $x) {
    same($x, true, "result $i");
}
printf("%d pushes in %.3f s\n", $n, microtime(true) - $start);
echo "ok\n";
