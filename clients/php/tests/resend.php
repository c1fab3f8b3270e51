<?php
// Against tests/php_client.rs's fake herald, which answers part of a
// pipeline and closes: php resend.php ADDR API_TOKEN N
// Prints the results as one character each: 1 true, 0 false.

declare(strict_types=1);

require __DIR__ . '/check.php';

[$addr, $token, $n] = [arg(1), arg(2), (int) arg(3)];
$c = new Herald\Client($addr, ['token' => $token, 'retries' => 2]);
$r = $c->pipeline(function (Herald\Pipeline $p) use ($n) {
    for ($i = 0; $i < $n; $i++) {
        $p->push("u$i", ['i' => $i]);
    }
});
same(count($r), $n, 'one result per line');
echo implode('', array_map(fn ($x) => $x ? '1' : '0', $r)), "\n";
