<?php
// Topics and kicks: php topics.php TEXT_ADDR N
// tests/php_client.rs bound u1, u2 and u3 (one connection each) and checks
// what each received, in order, and that u1 was closed with 4500.

declare(strict_types=1);

require __DIR__ . '/check.php';

[$addr, $n] = [arg(1), (int) arg(2)];

// Bad topic names throw before anything is sent: this client points at a
// listening socket that must see no connection at all.
$trap = stream_socket_server('tcp://127.0.0.1:0') ?: fail('listen');
$t = new Herald\Client(stream_socket_get_name($trap, false), ['timeout' => 0.5]);
$bad = ['', 'a b', 'a%b', "tab\there", "new\nline", 'café', "bad\xff", "\x7f", str_repeat('t', 65)];
foreach ($bad as $name) {
    $calls = [
        'join' => fn () => $t->join($name, 'u1'),
        'leave' => fn () => $t->leave($name, ['u1', 'u2']),
        'publish' => fn () => $t->publish($name, ['m' => 1]),
        'dropTopic' => fn () => $t->dropTopic($name),
        'presence' => fn () => $t->presence($name),
        'members' => fn () => $t->members($name),
        'allMembers' => fn () => $t->allMembers($name),
        'a pipeline' => fn () => $t->pipeline(fn (Herald\Pipeline $p) => $p->publish('fine')->members($name)),
    ];
    foreach ($calls as $what => $call) {
        $e = throws(InvalidArgumentException::class, $call, "$what with the topic " . var_export($name, true));
        check(
            str_contains($e->getMessage(), 'is not a topic name: 1 to 64 printable ASCII characters, no space or %'),
            'the message: ' . $e->getMessage(),
        );
    }
}
throws(InvalidArgumentException::class, fn () => $t->members('fine', null, 0), 'a limit of 0');
throws(InvalidArgumentException::class, fn () => $t->allMembers('fine', 0), 'a page size of 0');
[$r, $w, $x] = [[$trap], null, null];
same(stream_select($r, $w, $x, 0, 100_000), 0, 'no connection was opened');

// A page of 1000 uids of 128 bytes (herald's default --max-uid) comes in
// reads of 64 KiB; other replies stay bounded at 4 KiB.
$uids = array_map(fn (int $i) => sprintf('%0128d', $i), range(1, 1000));
$reply = json_encode(['topic' => 'big', 'uids' => $uids, 'next' => $uids[999]]) . "\n";
$members = Herald\Command::members('big', null, 1000);
$batch = new Herald\Batch([$members->line], [$members->expect], 'sans-io');
same($batch->output(65536), "{\"members\":\"big\",\"limit\":1000}\n", 'the members line');
foreach (str_split($reply, 65536) as $chunk) {
    $batch->input($chunk);
}
same($batch->results(), [['uids' => $uids, 'next' => $uids[999]]], 'a 130 KB page');
$kick = Herald\Command::kick('u1');
$batch = new Herald\Batch([$kick->line], [$kick->expect], 'sans-io');
$batch->output(65536);
throws(Herald\ProtocolException::class, fn () => $batch->input(str_repeat('o', 4097)), 'a 4 KiB reply to a kick');

$c = new Herald\Client($addr);

same($c->join('news', 'u1'), 1, 'join u1');
same($c->join('news', ['u2', 'later']), 1, 'join u2 and later (offline)');
// A pipeline whose callback throws sends nothing: u1 and u2 never see "never".
throws(
    InvalidArgumentException::class,
    fn () => $c->pipeline(fn (Herald\Pipeline $p) => $p->publish('news', ['m' => 'never'])->publish('news!%')),
    'a bad name in a pipeline',
);
same($c->publish('news', ['title' => 'hello', 'topic' => 'ignored']), 2, 'publish to news');
same($c->presence('news'), ['connections' => 2, 'uids' => 2], 'presence');

// Paging with limit 1: walk with `next`.
$pages = [];
$after = null;
do {
    $page = $c->members('news', $after, 1);
    $pages[] = $page;
    $after = $page['next'];
} while ($after !== null && count($pages) < 10);
same($pages, [['uids' => ['u1'], 'next' => 'u1'], ['uids' => ['u2'], 'next' => null]], 'the pages');
same(iterator_to_array($c->allMembers('news', 1)), ['u1', 'u2'], 'allMembers a uid at a time');
same(iterator_to_array($c->allMembers('news')), ['u1', 'u2'], 'allMembers');
same($c->members('news'), ['uids' => ['u1', 'u2'], 'next' => null], 'one page');
same($c->members('nothing'), ['uids' => [], 'next' => null], 'an unknown topic has no members');
same($c->presence('nothing'), ['connections' => 0, 'uids' => 0], 'nor presence');
same($c->publish('nothing', ['m' => 1]), 0, 'a publish to no one');
$e = throws(Herald\ServerError::class, fn () => $c->join('news', []), 'join no uid');
same($e->reason, '"uids" is an empty list', 'the reason');

// The client's rule is herald's: every character it allows, herald takes.
$allowed = implode('', array_map('chr', array_diff(range(0x21, 0x7e), [0x25])));
foreach ([substr($allowed, 0, 64), substr($allowed, 64)] as $name) {
    check(Herald\Topic::valid($name), "valid: $name");
    same($c->join($name, 'nobody'), 0, "join $name");
    same($c->dropTopic($name), 0, "drop $name");
}

// A page longer than 4 KiB (the test bound these uids too).
$big = array_map(fn (int $i) => sprintf('member-%s-%02d', str_repeat('m', 80), $i), range(0, 59));
same($c->join('big', array_reverse($big)), 60, 'join 60 uids');
$page = $c->members('big', null, 1000);
check(strlen(json_encode($page)) > 4096, 'a long page');
same($page, ['uids' => $big, 'next' => null], 'the long page, sorted');
same($c->dropTopic('big'), 60, 'drop big');

// Every topic command pipelined, an error in its slot.
$r = $c->pipeline(function (Herald\Pipeline $p) {
    $p->join('room', 'u3')->presence('room')->members('room', null, 10)->publish('room', ['m' => 'room'])
        ->join('room', '')->leave('room', ['u3'])->publish('room', ['m' => 'gone'])->dropTopic('room')->kick('nobody');
});
same(count($r), 9, 'nine results');
check($r[4] instanceof Herald\ServerError && $r[4]->reason === 'empty uid', 'slot 4: ' . var_export($r[4], true));
$r[4] = 'error';
same($r, [
    1,
    ['connections' => 1, 'uids' => 1],
    ['uids' => ['u3'], 'next' => null],
    1,
    'error',
    1,
    0,
    0,
    0,
], 'the pipelined topic commands');

// N publishes in one pipeline, to topics of 2, 1 and 0 connections in
// turn: the replies must come back in that order.
same($c->join('solo', 'u1'), 1, 'join solo');
$topics = ['news', 'solo', 'empty'];
$start = microtime(true);
$r = $c->pipeline(function (Herald\Pipeline $p) use ($n, $topics) {
    for ($i = 0; $i < $n; $i++) {
        $p->publish($topics[$i % 3], ['seq' => $i]);
    }
});
$took = microtime(true) - $start;
same(count($r), $n, 'one result per publish');
foreach ($r as $i => $got) {
    same($got, [2, 1, 0][$i % 3], "publish $i");
}
printf("%d publishes pipelined in %.3f s\n", $n, $took);

same($c->leave('news', 'u2'), 1, 'leave u2');
same($c->publish('news', ['m' => 'after leave']), 1, 'publish after the leave');
same($c->dropTopic('news'), 1, 'drop news');
same($c->dropTopic('solo'), 1, 'drop solo');
same($c->publish('news', ['m' => 'after drop']), 0, 'publish after the drop');
same($c->presence('news'), ['connections' => 0, 'uids' => 0], 'presence after the drop');
same($c->kick('u1'), 1, 'kick u1');
same($c->kick('nobody'), 0, 'kick nobody');
echo "ok\n";
