<?php
// Failures: php give_up.php CLOSING_ADDR REFUSED_ADDR SILENT_ADDR GARBAGE_ADDR
// (fake servers of tests/php_client.rs: one closes every connection at once,
// one port refuses, one never replies, one answers nonsense).

declare(strict_types=1);

require __DIR__ . '/check.php';

[$closing, $refused, $silent, $garbage] = [arg(1), arg(2), arg(3), arg(4)];

$start = microtime(true);
$e = throws(Herald\ConnectionException::class, fn () => (new Herald\Client($closing, ['retries' => 2]))->push('u'), 'closed every time');
same($e->address, $closing, 'the address');
check(str_contains($e->getMessage(), $closing) && str_contains($e->getMessage(), '3 attempt'), $e->getMessage());
printf("closed every time: %s (%.2f s)\n", $e->getMessage(), microtime(true) - $start);

$start = microtime(true);
$e = throws(Herald\ConnectionException::class, fn () => (new Herald\Client($refused, ['retries' => 1]))->count(), 'refused');
check(str_contains($e->getMessage(), $refused) && str_contains($e->getMessage(), 'Connection refused'), $e->getMessage());
printf("refused: %s (%.2f s)\n", $e->getMessage(), microtime(true) - $start);

$start = microtime(true);
$quiet = new Herald\Client($silent, ['timeout' => 0.3]);
$e = throws(Herald\ConnectionException::class, fn () => $quiet->push('u'), 'no reply');
check(str_contains($e->getMessage(), 'no reply within 0.3 s'), $e->getMessage());
$took = microtime(true) - $start;
check($took >= 0.3 && $took < 1.0, "the timeout holds: $took s");
printf("no reply: %s (%.2f s)\n", $e->getMessage(), $took);

$e = throws(Herald\ProtocolException::class, fn () => (new Herald\Client($garbage))->push('u'), 'nonsense');
same($e->reply, 'banana', 'the reply');
printf("nonsense: %s\n", $e->getMessage());
echo "ok\n";
