<?php
// One pipeline of N pushes: php pipeline.php TEXT_ADDR UID N [PAD_BYTES]
// Each push carries its sequence number (and PAD_BYTES of padding); every
// result must be `true` (or `false` for UID "nobody"), in order.

declare(strict_types=1);

require __DIR__ . '/check.php';

$c = new Herald\Client(arg(1));
$uid = arg(2);
$n = (int) arg(3);
$pad = str_repeat('x', (int) ($_SERVER['argv'][4] ?? 0));
$want = $uid !== 'nobody';
$start = microtime(true);
$results = $c->pipeline(function (Herald\Pipeline $p) use ($uid, $n, $pad) {
    for ($i = 0; $i < $n; $i++) {
        $p->push($uid, $pad === '' ? ['seq' => $i] : ['seq' => $i, 'pad' => $pad]);
    }
});
$took = microtime(true) - $start;
same(count($results), $n, 'one result per line');
foreach ($results as $i => $r) {
    same($r, $want, "result $i");
}
// The same connection goes on serving single calls.
same($c->online($uid), $want ? 1 : 0, 'online after the pipeline');
printf("%d pushes pipelined in %.3f s\n", $n, $took);
