<?php
// What every test script shares: the client, warnings as failures, and checks
// that exit 1 with a message (tests/php_client.rs shows it).

declare(strict_types=1);

require __DIR__ . '/../Herald.php';

error_reporting(E_ALL);
set_error_handler(function (int $level, string $message, string $file, int $line): bool {
    if (!(error_reporting() & $level)) {
        return false; // silenced with @ by the client on purpose (it reads error_get_last)
    }
    throw new ErrorException($message, 0, $level, $file, $line);
});

function fail(string $what): never
{
    fwrite(STDERR, "FAILED: $what\n");
    exit(1);
}

function check(bool $ok, string $what): void
{
    if (!$ok) {
        fail($what);
    }
}

function same(mixed $got, mixed $want, string $what): void
{
    if ($got !== $want) {
        fail(sprintf("%s: got %s, want %s", $what, var_export($got, true), var_export($want, true)));
    }
}

/** Runs `$fn`, which must throw a `$class`; returns it. */
function throws(string $class, callable $fn, string $what): Throwable
{
    try {
        $fn();
    } catch (Throwable $e) {
        if ($e instanceof $class) {
            return $e;
        }
        fail(sprintf('%s: expected %s, got %s: %s', $what, $class, get_class($e), $e->getMessage()));
    }
    fail("$what: expected $class, nothing was thrown");
}

/** Command-line argument `$i`. */
function arg(int $i): string
{
    return $_SERVER['argv'][$i] ?? fail("argument $i is missing");
}
