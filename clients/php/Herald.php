<?php
/**
 * herald's PHP backend client: pushes, topics and kicks through herald's text
 * port on one persistent connection, with pipelining, reconnects and uid tokens.
 *
 * PHP 8.1+, nothing beyond the core (streams, json, hash, pcre); no Composer
 * dependency: `require 'Herald.php';`. Usage in README.md beside this file.
 */

declare(strict_types=1);

namespace Herald;

/** The base of every exception this client throws. */
abstract class HeraldException extends \RuntimeException
{
}

/**
 * herald could not be reached: the connection cannot be opened, or it broke
 * and `retries` reconnects in a row got no reply, or a reply did not come
 * within `timeout` (the lines then unanswered may or may not have been
 * handled, so they are not sent again).
 */
class ConnectionException extends HeraldException
{
    public function __construct(public readonly string $address, string $message, ?\Throwable $previous = null)
    {
        parent::__construct($message, 0, $previous);
    }
}

/**
 * herald answered `error <reason>` to a line (malformed, empty uid, line too
 * long...); `$request` is that line. The connection stays usable. In a pipeline the result slot holds
 * this object instead of it being thrown.
 */
class ServerError extends HeraldException
{
    public function __construct(
        public readonly string $reason,
        public readonly string $request,
        public readonly string $address,
        ?string $message = null,
    ) {
        parent::__construct($message ?? sprintf(
            'herald at %s answered "error %s" to %s',
            $address,
            $reason,
            strlen($request) > 200 ? substr($request, 0, 200) . '...' : $request,
        ));
    }
}

/**
 * herald refused the API token (the option `token`), or wants one and none
 * was given. Never retried: the same token would be refused again.
 */
final class AuthException extends ServerError
{
}

/** A reply herald never sends: not herald on that port, or a version this client does not know. */
final class ProtocolException extends HeraldException
{
    public function __construct(public readonly string $address, public readonly string $reply, string $why)
    {
        $shown = strlen($reply) > 200 ? substr($reply, 0, 200) . '...' : $reply;
        parent::__construct(sprintf('herald at %s sent %s: %s', $address, json_encode($shown), $why));
    }
}

/** Uid tokens for browsers (`ws://host:1234/?token=...`): HS256 JWTs, as herald's `--auth-secret-file` expects. */
final class Token
{
    /**
     * A token proving `$uid` for `$ttlSeconds`. `$claims` adds others, such as
     * `aud` and `iss` (required when herald runs with `--auth-audience` or
     * `--auth-issuer`), `nbf`, or `topics`: the topics a herald.v1 client may
     * subscribe to itself, a list of names and `prefix*` patterns (checked
     * here: herald refuses a token whose `topics` is not a list of strings).
     * `sub`, `iat` and `exp` come from the arguments.
     */
    public static function mint(string $secret, string $uid, int $ttlSeconds = 3600, array $claims = []): string
    {
        if (strlen($secret) < 32) {
            throw new \InvalidArgumentException('the secret must be at least 32 bytes (herald refuses shorter keys, RFC 7518)');
        }
        if ($uid === '') {
            throw new \InvalidArgumentException('the uid is empty');
        }
        if ($ttlSeconds <= 0) {
            throw new \InvalidArgumentException('the ttl must be at least one second');
        }
        foreach (['sub', 'iat', 'exp'] as $name) {
            if (array_key_exists($name, $claims)) {
                throw new \InvalidArgumentException("the claim \"$name\" comes from the arguments, not from \$claims");
            }
        }
        if (array_key_exists('topics', $claims)) {
            $claims['topics'] = self::topicPatterns($claims['topics']);
        }
        $now = time();
        $head = self::b64url(json_encode(['alg' => 'HS256', 'typ' => 'JWT'], JSON_THROW_ON_ERROR));
        $body = self::b64url(json_encode(
            ['sub' => $uid, 'iat' => $now, 'exp' => $now + $ttlSeconds] + $claims,
            JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES,
        ));
        $sig = self::b64url(hash_hmac('sha256', "$head.$body", $secret, true));
        return "$head.$body.$sig";
    }

    /**
     * The `topics` claim as a JSON list: each a topic name, or a prefix of one
     * followed by `*` (`room.*`; `*` alone allows every topic).
     *
     * @return list<string>
     */
    private static function topicPatterns(mixed $topics): array
    {
        if (!is_array($topics) || !array_is_list($topics)) {
            throw new \InvalidArgumentException('the claim "topics" must be a list of topic names and prefix* patterns');
        }
        foreach ($topics as $p) {
            $ok = is_string($p) && (Topic::valid($p)
                || (str_ends_with($p, '*') && ($p === '*' || Topic::valid(substr($p, 0, -1)))));
            if (!$ok) {
                throw new \InvalidArgumentException(sprintf(
                    'the claim "topics" holds %s, which is neither a topic name (%s) nor a prefix of one followed by *',
                    json_encode($p, JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE) ?: gettype($p),
                    Topic::RULE,
                ));
            }
        }
        return $topics;
    }

    private static function b64url(string $bytes): string
    {
        return rtrim(strtr(base64_encode($bytes), '+/', '-_'), '=');
    }
}

/** Topic names, checked as herald checks them, before anything is sent. */
final class Topic
{
    /** herald's rule, as its `error` reply words it. */
    public const RULE = '1 to 64 printable ASCII characters, no space or %';

    public static function valid(string $name): bool
    {
        return preg_match('/^[\x21-\x24\x26-\x7e]{1,64}$/D', $name) === 1;
    }

    /** `$name`, or an InvalidArgumentException saying why herald would refuse it. */
    public static function check(string $name): string
    {
        if (!self::valid($name)) {
            $shown = json_encode(
                strlen($name) > 80 ? substr($name, 0, 80) . '...' : $name,
                JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE,
            );
            throw new \InvalidArgumentException(sprintf(
                '%s is not a topic name: %s (%d bytes); nothing was sent',
                $shown,
                self::RULE,
                strlen($name),
            ));
        }
        return $name;
    }
}

/**
 * The commands of a pipeline, queued by the same methods as the client's;
 * `Client::pipeline` sends them and returns their results in order.
 */
final class Pipeline
{
    /** @var list<string> */
    private array $lines = [];
    /** @var list<Expect> */
    private array $expects = [];

    /** Queues a push to `$uid`; its result is `true` (delivered) or `false` (offline). */
    public function push(string|int $uid, array $fields = []): self
    {
        return $this->add(Command::push($uid, $fields));
    }

    /** Queues a push to each uid; its result is the number of connections reached. */
    public function pushMany(array $uids, array $fields = []): self
    {
        return $this->add(Command::pushMany($uids, $fields));
    }

    /** Queues a broadcast; its result is the number of connections reached. */
    public function broadcast(array $fields = []): self
    {
        return $this->add(Command::broadcast($fields));
    }

    /** Queues a presence query; its result is how many connections `$uid` has. */
    public function online(string|int $uid): self
    {
        return $this->add(Command::online($uid));
    }

    /** Queues a count; its result is `['uids' => N, 'connections' => M]`. */
    public function count(): self
    {
        return $this->add(Command::count());
    }

    /** Queues a join; its result is the connections of those uids now in the topic. */
    public function join(string $topic, string|int|array $uids): self
    {
        return $this->add(Command::membership('join', $topic, $uids));
    }

    /** Queues a leave; its result is the connections that left the topic. */
    public function leave(string $topic, string|int|array $uids): self
    {
        return $this->add(Command::membership('leave', $topic, $uids));
    }

    /** Queues a publish; its result is the connections reached (0 if none). */
    public function publish(string $topic, array $message = []): self
    {
        return $this->add(Command::publish($topic, $message));
    }

    /** Queues a drop; its result is the connections taken out of the topic. */
    public function dropTopic(string $topic): self
    {
        return $this->add(Command::topic('drop', $topic));
    }

    /** Queues a presence query; its result is `['connections' => C, 'uids' => U]`. */
    public function presence(string $topic): self
    {
        return $this->add(Command::topic('presence', $topic));
    }

    /** Queues a page of members; its result is `['uids' => [...], 'next' => ?string]`. */
    public function members(string $topic, ?string $after = null, int $limit = 100): self
    {
        return $this->add(Command::members($topic, $after, $limit));
    }

    /** Queues a kick; its result is the connections closed. */
    public function kick(string|int $uid): self
    {
        return $this->add(Command::kick($uid));
    }

    /** Keeps the line and what it expects, not the Command: a big pipeline holds less. */
    private function add(Command $c): self
    {
        $this->lines[] = $c->line;
        $this->expects[] = $c->expect;
        return $this;
    }

    /** @internal */
    public function batch(string $address): Batch
    {
        return new Batch($this->lines, $this->expects, $address);
    }
}

/**
 * A connection to herald's text port (`--text`), opened on first use and
 * kept for every call. Not shared across processes: a forked child opens its own.
 */
final class Client
{
    /** Bytes handed to one write, and read at most per read. */
    private const CHUNK = 65536;
    private const OPTIONS = ['token', 'timeout', 'retries'];

    private readonly string $target;
    private readonly ?string $token;
    private readonly float $timeout;
    private readonly int $retries;
    /** @var resource|null */
    private $stream = null;
    /** The process that opened the stream. */
    private int $pid = 0;

    /**
     * @param string $address herald's text port, `host:port` (`tcp://` may be written)
     * @param array{token?: string, timeout?: int|float, retries?: int} $options
     *   `token`: herald's API token (`--api-token-file`), sent first on every connection;
     *   `timeout`: seconds for connecting and for each reply (5);
     *   `retries`: reconnects in a row without a reply before giving up (3).
     */
    public function __construct(private readonly string $address = '127.0.0.1:5678', array $options = [])
    {
        $unknown = array_diff(array_keys($options), self::OPTIONS);
        if ($unknown !== []) {
            throw new \InvalidArgumentException(sprintf(
                'unknown option(s) %s (known: %s)',
                implode(', ', $unknown),
                implode(', ', self::OPTIONS),
            ));
        }
        $token = $options['token'] ?? null;
        if ($token !== null && (!is_string($token) || $token === '')) {
            throw new \InvalidArgumentException('the option "token" must be a non-empty string');
        }
        $timeout = $options['timeout'] ?? 5;
        if (!(is_int($timeout) || is_float($timeout)) || $timeout <= 0) {
            throw new \InvalidArgumentException('the option "timeout" must be a number of seconds above 0');
        }
        $retries = $options['retries'] ?? 3;
        if (!is_int($retries) || $retries < 0) {
            throw new \InvalidArgumentException('the option "retries" must be an integer, 0 or more');
        }
        $this->token = $token;
        $this->timeout = (float) $timeout;
        $this->retries = $retries;
        $this->target = str_contains($address, '://') ? $address : "tcp://$address";
    }

    public function __destruct()
    {
        $this->close();
    }

    /**
     * Sends `{"uid":UID, ...$fields}` to every connection bound to `$uid`: `true`
     * if one had it, `false` if `$uid` is offline. `$fields` cannot replace the uid.
     */
    public function push(string|int $uid, array $fields = []): bool
    {
        return $this->one(Command::push($uid, $fields));
    }

    /** Sends `{"uids":[...], ...$fields}` to each uid; returns the connections reached (0 if none). */
    public function pushMany(array $uids, array $fields = []): int
    {
        return $this->one(Command::pushMany($uids, $fields));
    }

    /** Sends `{"all":true, ...$fields}` to every bound connection; returns how many it reached. */
    public function broadcast(array $fields = []): int
    {
        return $this->one(Command::broadcast($fields));
    }

    /** How many connections `$uid` has (0 when offline). */
    public function online(string|int $uid): int
    {
        return $this->one(Command::online($uid));
    }

    /** @return array{uids: int, connections: int} the uids and bound connections online */
    public function count(): array
    {
        return $this->one(Command::count());
    }

    /**
     * Puts `$uids` (one uid, or a list sent as `"uids"`) in `$topic`: their
     * connections now and later, until `leave` or `dropTopic`. Returns the
     * connections of those uids now in the topic (0 if none is online: the
     * join is kept for when they come).
     */
    public function join(string $topic, string|int|array $uids): int
    {
        return $this->one(Command::membership('join', $topic, $uids));
    }

    /** Takes `$uids` out of `$topic`; returns how many of their connections left it. */
    public function leave(string $topic, string|int|array $uids): int
    {
        return $this->one(Command::membership('leave', $topic, $uids));
    }

    /**
     * Sends `{"topic":TOPIC, ...$message}` to every connection in `$topic`;
     * returns how many it reached, 0 if none (as `pushMany`). `$message`
     * cannot replace the topic, and must not hold another routing field
     * (`uid`, `uids`, `all`...): herald answers `error` to those.
     */
    public function publish(string $topic, array $message = []): int
    {
        return $this->one(Command::publish($topic, $message));
    }

    /** Empties `$topic` and forgets the uids joined to it; returns the connections taken out. */
    public function dropTopic(string $topic): int
    {
        return $this->one(Command::topic('drop', $topic));
    }

    /** @return array{connections: int, uids: int} the connections in `$topic` and their distinct uids */
    public function presence(string $topic): array
    {
        return $this->one(Command::topic('presence', $topic));
    }

    /**
     * One page of the uids with a connection in `$topic`, sorted, those after
     * `$after` (the previous page's `next`). `$limit` is 1 or more; herald
     * lists at most 1000.
     *
     * @return array{uids: list<string>, next: ?string} `next` is null on the last page
     */
    public function members(string $topic, ?string $after = null, int $limit = 100): array
    {
        return $this->one(Command::members($topic, $after, $limit));
    }

    /**
     * Every uid with a connection in `$topic`, a page of `$pageSize` at a time
     * (lazily: a page is asked for when the one before is used up). Uids that
     * join or leave meanwhile may or may not be listed; none is listed twice.
     * A bad topic name or page size throws here, not at the first use.
     *
     * @return \Generator<int, string>
     */
    public function allMembers(string $topic, int $pageSize = 1000): \Generator
    {
        Command::members($topic, null, $pageSize); // checks the arguments now
        return $this->pages($topic, $pageSize);
    }

    /** @return \Generator<int, string> */
    private function pages(string $topic, int $pageSize): \Generator
    {
        $after = null;
        do {
            $page = $this->members($topic, $after, $pageSize);
            foreach ($page['uids'] as $uid) {
                yield $uid; // keys 0, 1, 2... across pages (`yield from` would repeat them)
            }
            $after = $page['next'];
        } while ($after !== null);
    }

    /**
     * Closes every connection of `$uid` with WebSocket close code 4500
     * ("kicked": clients do not reconnect); returns how many.
     */
    public function kick(string|int $uid): int
    {
        return $this->one(Command::kick($uid));
    }

    /**
     * Runs `$fn` with a Pipeline, then sends everything it queued in large
     * writes while reading the replies, and returns the results in order (as
     * the single calls return them; a ServerError object where herald answered
     * `error`).
     *
     * @param callable(Pipeline): mixed $fn
     * @return list<bool|int|array|ServerError>
     */
    public function pipeline(callable $fn): array
    {
        $p = new Pipeline();
        $fn($p);
        $batch = $p->batch($this->address);
        unset($p); // the batch frees each line once answered
        return $this->exchange($batch);
    }

    /** Closes the connection; the next call opens a new one. */
    public function close(): void
    {
        if ($this->stream !== null) {
            @fclose($this->stream);
            $this->stream = null;
        }
    }

    private function one(Command $command): mixed
    {
        $result = $this->exchange(new Batch([$command->line], [$command->expect], $this->address))[0];
        if ($result instanceof ServerError) {
            throw $result;
        }
        return $result;
    }

    /**
     * Sends the lines and reads their replies. When the connection breaks, every
     * line without a reply is sent again on a new one (herald answers every line
     * it handled before it closes a connection, so none is handled twice).
     *
     * @return list<mixed>
     */
    private function exchange(Batch $batch): array
    {
        if ($batch->done()) {
            return [];
        }
        $failures = 0;
        while (true) {
            try {
                $this->open();
                $this->drive($batch);
                return $batch->results();
            } catch (ConnectionLost $lost) {
                $this->close();
                $failures = $batch->restart() ? 1 : $failures + 1;
                if ($failures > $this->retries) {
                    throw new ConnectionException($this->address, sprintf(
                        'herald at %s: %s (gave up after %d attempt(s) in a row)',
                        $this->address,
                        $lost->getMessage(),
                        $failures,
                    ), $lost);
                }
                usleep(self::backoff($failures));
            } catch (\Throwable $e) {
                // A timeout, a refused token, a reply out of protocol: what the
                // connection carries next cannot be trusted.
                $this->close();
                throw $e;
            }
        }
    }

    /** Microseconds to wait before reconnect number `$n`: 0.1 s doubling, at most 2 s, jittered. */
    private static function backoff(int $n): int
    {
        $base = min(100_000 * 2 ** min($n - 1, 5), 2_000_000);
        return intdiv($base, 2) + random_int(0, intdiv($base, 2));
    }

    /** Makes sure a connection is open (and authorized); a stale one is replaced quietly. */
    private function open(): void
    {
        if ($this->stream !== null && ($this->pid !== getmypid() || self::closedWhileIdle($this->stream))) {
            $this->close();
        }
        if ($this->stream !== null) {
            return;
        }
        $errno = 0;
        $errstr = '';
        $context = stream_context_create(['socket' => ['tcp_nodelay' => true]]);
        error_clear_last();
        $s = @stream_socket_client($this->target, $errno, $errstr, $this->timeout, STREAM_CLIENT_CONNECT, $context);
        if ($s === false) {
            $why = $errstr !== '' ? "$errstr (errno $errno)" : (error_get_last()['message'] ?? 'unknown error');
            throw new ConnectionLost("cannot connect: $why");
        }
        stream_set_blocking($s, false);
        // No PHP-side read buffer: stream_select must see every byte not yet read.
        stream_set_read_buffer($s, 0);
        $this->stream = $s;
        $this->pid = getmypid();
        if ($this->token !== null) {
            $line = Command::auth($this->token);
            $auth = new Batch([$line->line], [$line->expect], $this->address);
            $this->drive($auth);
            $reply = $auth->results()[0];
            if ($reply instanceof ServerError) {
                throw $reply;
            }
        }
    }

    /** True when herald closed an idle connection (or sent what nobody asked for). */
    private static function closedWhileIdle($stream): bool
    {
        $read = [$stream];
        $write = $except = null;
        return @stream_select($read, $write, $except, 0) !== 0;
    }

    /**
     * Writes the batch's lines while reading its replies, until every line has
     * one: herald stops reading a backend whose replies pile up unread, so
     * writing everything first could wait forever.
     */
    private function drive(Batch $batch): void
    {
        $s = $this->stream;
        $out = '';
        $writeError = null;
        $deadline = microtime(true) + $this->timeout;
        while (!$batch->done()) {
            if ($out === '' && $writeError === null) {
                $out = $batch->output(self::CHUNK);
            }
            $left = $deadline - microtime(true);
            if ($left <= 0) {
                throw new ConnectionException($this->address, sprintf(
                    'herald at %s: no reply within %s s (%d line(s) unanswered, not sent again)',
                    $this->address,
                    $this->timeout,
                    $batch->unanswered(),
                ));
            }
            if ($writeError !== null) {
                // The peer is gone: its last replies are already here, or never come.
                $left = min($left, 0.5);
            }
            $read = [$s];
            $write = $out !== '' && $writeError === null ? [$s] : null;
            $except = null;
            $ready = @stream_select($read, $write, $except, (int) $left, (int) (fmod($left, 1.0) * 1e6));
            if ($ready === false) {
                continue; // interrupted by a signal; the deadline still holds
            }
            if ($ready === 0 && $writeError !== null) {
                throw new ConnectionLost($writeError);
            }
            if ($write) {
                error_clear_last();
                $n = @fwrite($s, $out);
                if ($n === false) {
                    // Read what was answered before the connection went, then resend the rest.
                    $writeError = self::lastError('write');
                } elseif ($n > 0) {
                    $out = substr($out, $n);
                    $deadline = microtime(true) + $this->timeout;
                }
            }
            if ($read) {
                error_clear_last();
                $data = @fread($s, self::CHUNK);
                if ($data === false) {
                    // PHP reports no errno for a failed read; a reset is what fails one.
                    throw new ConnectionLost('read failed: connection reset');
                }
                if ($data !== '') {
                    $batch->input($data);
                    $deadline = microtime(true) + $this->timeout;
                } elseif (feof($s)) {
                    throw new ConnectionLost($writeError ?? 'connection closed by herald');
                }
            }
        }
    }

    /** The OS error of the last stream call, as `Broken pipe (errno 32)`. */
    private static function lastError(string $what): string
    {
        $message = error_get_last()['message'] ?? '';
        if (preg_match('/errno=(\d+) (.*)$/', $message, $m)) {
            return "$what failed: {$m[2]} (errno {$m[1]})";
        }
        return $message !== '' ? "$what failed: $message" : "$what failed";
    }
}

/**
 * @internal A line and the reply it expects, encoded once when queued.
 */
final class Command
{
    private const JSON = JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR;
    /** The auth line as exceptions show it: never the token. */
    public const AUTH_SHOWN = '{"auth":"(token)"}';

    private function __construct(public readonly string $line, public readonly Expect $expect)
    {
    }

    public static function push(string|int $uid, array $fields): self
    {
        // `+` keeps the left side's key: the uid comes first and stays.
        return new self(json_encode(['uid' => $uid] + $fields, self::JSON), Expect::Delivered);
    }

    public static function pushMany(array $uids, array $fields): self
    {
        return new self(json_encode(['uids' => array_values($uids)] + $fields, self::JSON), Expect::Reached);
    }

    public static function broadcast(array $fields): self
    {
        return new self(json_encode(['all' => true] + $fields, self::JSON), Expect::Reached);
    }

    public static function online(string|int $uid): self
    {
        return new self(json_encode(['online' => $uid], self::JSON), Expect::Connections);
    }

    public static function count(): self
    {
        return new self('{"count":true}', Expect::Totals);
    }

    /** `{"join":TOPIC,"uid":U}` or with `"uids"` (`$verb`: join or leave). */
    public static function membership(string $verb, string $topic, string|int|array $uids): self
    {
        $line = [$verb => Topic::check($topic)];
        $line += is_array($uids) ? ['uids' => array_values($uids)] : ['uid' => $uids];
        return new self(json_encode($line, self::JSON), Expect::Done);
    }

    public static function publish(string $topic, array $message): self
    {
        return new self(json_encode(['topic' => Topic::check($topic)] + $message, self::JSON), Expect::Reached);
    }

    /** `{"drop":TOPIC}` or `{"presence":TOPIC}`. */
    public static function topic(string $verb, string $topic): self
    {
        $line = json_encode([$verb => Topic::check($topic)], self::JSON);
        return new self($line, $verb === 'drop' ? Expect::Done : Expect::Presence);
    }

    public static function members(string $topic, ?string $after, int $limit): self
    {
        if ($limit < 1) {
            throw new \InvalidArgumentException("the limit must be 1 or more, not $limit");
        }
        $line = ['members' => Topic::check($topic), 'limit' => $limit];
        if ($after !== null) {
            $line['after'] = $after;
        }
        return new self(json_encode($line, self::JSON), Expect::Page);
    }

    public static function kick(string|int $uid): self
    {
        return new self(json_encode(['kick' => $uid], self::JSON), Expect::Done);
    }

    public static function auth(string $token): self
    {
        return new self(json_encode(['auth' => $token], self::JSON), Expect::Auth);
    }
}

/** @internal What a line's reply means; see README's "Text port" table. */
enum Expect
{
    /** `ok` or `fail`: bool. */
    case Delivered;
    /** `ok N` or `fail`: int. */
    case Reached;
    /** `N`: int. */
    case Connections;
    /** `{"uids":N,"connections":M}`: array. */
    case Totals;
    /** `ok N`, never `fail` (join, leave, drop, kick): int. */
    case Done;
    /** `{"topic":T,"connections":C,"uids":U}`: array. */
    case Presence;
    /** `{"topic":T,"uids":[...],"next":U|null}`: array. */
    case Page;
    /** `ok` to `{"auth":...}`. */
    case Auth;

    /** The result of `$reply` (a ServerError for `error ...`), or null if herald never says that. */
    public function decode(string $reply, string $line, string $address): mixed
    {
        if (str_starts_with($reply, 'error ')) {
            return self::error(substr($reply, 6), $this, $line, $address);
        }
        return match ($this) {
            self::Delivered => match ($reply) {
                'ok' => true,
                'fail' => false,
                default => null,
            },
            self::Reached => $reply === 'fail' ? 0 : (preg_match('/^ok (\d+)$/D', $reply, $m) ? (int) $m[1] : null),
            self::Connections => preg_match('/^\d+$/D', $reply) ? (int) $reply : null,
            self::Totals => self::totals($reply),
            self::Done => preg_match('/^ok (\d+)$/D', $reply, $m) ? (int) $m[1] : null,
            self::Presence => self::presence($reply),
            self::Page => self::page($reply),
            self::Auth => $reply === 'ok' ? true : null,
        };
    }

    private static function error(string $reason, self $expect, string $line, string $address): ServerError
    {
        if ($expect === self::Auth) {
            return new AuthException($reason, Command::AUTH_SHOWN, $address, sprintf(
                'herald at %s refused the API token: %s',
                $address,
                $reason,
            ));
        }
        if ($reason === 'unauthorized') {
            // herald closes the connection after this: the rest would fail alike.
            throw new AuthException($reason, $line, $address, sprintf(
                'herald at %s wants its API token first (the option "token"): unauthorized',
                $address,
            ));
        }
        return new ServerError($reason, $line, $address);
    }

    /**
     * The longest reply line accepted: a page of members lists up to 1000
     * uids (128 bytes each by default, `--max-uid`, up to 6 bytes per byte
     * once JSON-escaped); herald's other replies are a few bytes.
     */
    public function maxReply(): int
    {
        return $this === self::Page ? 8 << 20 : 4096;
    }

    private static function presence(string $reply): ?array
    {
        $t = json_decode($reply, true);
        if (!is_array($t) || !is_string($t['topic'] ?? null)
            || !is_int($t['connections'] ?? null) || !is_int($t['uids'] ?? null)) {
            return null;
        }
        return ['connections' => $t['connections'], 'uids' => $t['uids']];
    }

    private static function page(string $reply): ?array
    {
        $t = json_decode($reply, true);
        if (!is_array($t) || !is_string($t['topic'] ?? null) || !is_array($t['uids'] ?? null)
            || !array_is_list($t['uids']) || !array_key_exists('next', $t)
            || !($t['next'] === null || is_string($t['next']))) {
            return null;
        }
        foreach ($t['uids'] as $uid) {
            if (!is_string($uid)) {
                return null;
            }
        }
        return ['uids' => $t['uids'], 'next' => $t['next']];
    }

    private static function totals(string $reply): ?array
    {
        $t = json_decode($reply, true);
        if (!is_array($t) || !is_int($t['uids'] ?? null) || !is_int($t['connections'] ?? null)) {
            return null;
        }
        return ['uids' => $t['uids'], 'connections' => $t['connections']];
    }
}

/**
 * @internal The lines of one call or pipeline and their replies, with no I/O:
 * lines out in order, reply bytes in, results out; after a lost connection,
 * `restart` makes every line without a reply go out again.
 */
final class Batch
{
    /** @var list<mixed> */
    private array $results = [];
    private readonly int $total;
    /** Lines handed out for writing on this connection. */
    private int $sent = 0;
    private int $answered = 0;
    private int $answeredAtRestart = 0;
    /** A reply line not yet complete. */
    private string $partial = '';

    /**
     * @param array<int, string> $lines the lines not yet answered, by index
     * @param list<Expect> $expects
     */
    public function __construct(private array $lines, private readonly array $expects, private readonly string $address)
    {
        $this->total = count($lines);
    }

    public function done(): bool
    {
        return $this->answered === $this->total;
    }

    public function unanswered(): int
    {
        return $this->total - $this->answered;
    }

    /** The next lines to write, at least `$bytes` of them unless fewer are left. */
    public function output(int $bytes): string
    {
        $out = '';
        while ($this->sent < $this->total && strlen($out) < $bytes) {
            $out .= $this->lines[$this->sent++] . "\n";
        }
        return $out;
    }

    /** Takes reply bytes as they come; each complete line answers the oldest line sent. */
    public function input(string $bytes): void
    {
        $buf = $this->partial . $bytes;
        $at = 0;
        while (($nl = strpos($buf, "\n", $at)) !== false) {
            $this->answer(rtrim(substr($buf, $at, $nl - $at), "\r"));
            $at = $nl + 1;
        }
        $this->partial = (string) substr($buf, $at);
        // The reply coming is the oldest line's (if none, `answer` refuses it).
        $max = ($this->expects[$this->answered] ?? Expect::Auth)->maxReply();
        if (strlen($this->partial) > $max) {
            throw new ProtocolException($this->address, $this->partial, 'a reply line longer than herald ever sends');
        }
    }

    private function answer(string $reply): void
    {
        $i = $this->answered;
        if ($i >= $this->sent) {
            throw new ProtocolException($this->address, $reply, 'a reply to no line');
        }
        $expect = $this->expects[$i];
        $result = $expect->decode($reply, $this->lines[$i], $this->address);
        if ($result === null) {
            $line = $expect === Expect::Auth ? Command::AUTH_SHOWN : $this->lines[$i];
            throw new ProtocolException($this->address, $reply, 'not a reply to ' . $line);
        }
        $this->results[] = $result;
        unset($this->lines[$i]);
        $this->answered++;
    }

    /** After a lost connection: resend from the first line with no reply. Says whether any reply came since the last restart. */
    public function restart(): bool
    {
        $progress = $this->answered > $this->answeredAtRestart;
        $this->answeredAtRestart = $this->answered;
        $this->sent = $this->answered;
        $this->partial = '';
        return $progress;
    }

    /** @return list<mixed> */
    public function results(): array
    {
        return $this->results;
    }
}

/** @internal The connection broke; the lines without a reply may be sent again. */
final class ConnectionLost extends \Exception
{
}
