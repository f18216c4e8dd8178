//! The server-side halves of the store's claims: each runs whole inside Redis,
//! so two servers claiming the same thing at the same instant get one yes.

use redis::Script;

/// KEYS[1] a hash, ARGV[1] a field, ARGV[2] a number: sets the field to the
/// number only when that moves it forward (a TOTP step later than every step
/// taken, an HOTP counter past every counter used). 1 when set, 0 when not.
const RAISE: &str = r"
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
if current >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
";

/// KEYS[1] a user's lock hash (f: failures, u: locked until); ARGV: the state the
/// caller read, the state it computed from it, the key's lifetime in seconds,
/// and a time (0: none) at which a locked user's state is left as it is.
/// Writes only when nobody changed the state meanwhile (compare and set), so
/// that the lockout rule stays in Rust and no failure counted elsewhere is lost.
/// Returns {1} when written; {-1, failures, locked_until} when the user is
/// locked at ARGV[6]; else {0, failures, locked_until} as they are now.
const SWAP_LOCK: &str = r"
local now = redis.call('HMGET', KEYS[1], 'f', 'u')
local f, u = now[1] or '0', now[2] or '0'
local at = tonumber(ARGV[6])
if at > 0 and tonumber(u) > at then return {-1, tonumber(f), tonumber(u)} end
if f ~= ARGV[1] or u ~= ARGV[2] then return {0, tonumber(f), tonumber(u)} end
redis.call('HSET', KEYS[1], 'f', ARGV[3], 'u', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {1}
";

/// KEYS[1] a login's push; ARGV[1] a request id, ARGV[2] seconds: registers the
/// id ({1, id}), or returns the id registered first ({0, that id}).
const JOIN: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return {1, ARGV[1]} end
return {0, redis.call('GET', KEYS[1]) or ''}
";

/// KEYS[1] a login; ARGV[1] seconds: claims the login for the first request
/// ({1, ""}), or returns what the first published so far ({0, value}; "" while nothing).
const CLAIM_LOGIN: &str = r"
if redis.call('SET', KEYS[1], '', 'NX', 'EX', ARGV[1]) then return {1, ''} end
return {0, redis.call('GET', KEYS[1]) or ''}
";

/// KEYS[1] a user's request count; ARGV[1] the window in seconds: counts one
/// more in the window that the first one opened. Returns {count, seconds left}.
const COUNT: &str = r"
local n = redis.call('INCR', KEYS[1])
local left = redis.call('TTL', KEYS[1])
if left < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {n, left}
";

/// KEYS[1] the user's tokens hash, KEYS[2] the user's lock hash; ARGV[1] the
/// field of what an accepted login claims (a TOTP step, `t:serial`, or the next
/// HOTP counter, `h:serial`; empty when it claims nothing), ARGV[2] its value,
/// ARGV[3] now. A locked user takes nothing: {-1, failures, locked until}; a
/// value not past the one stored: {0}; else it is taken and the failures
/// cleared: {1}.
const TAKE_UNLESS_LOCKED: &str = r"
local lock = redis.call('HMGET', KEYS[2], 'f', 'u')
local locked_until = tonumber(lock[2] or '0')
if locked_until > tonumber(ARGV[3]) then return {-1, tonumber(lock[1] or '0'), locked_until} end
if ARGV[1] ~= '' then
  local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
  if current >= tonumber(ARGV[2]) then return {0} end
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
redis.call('DEL', KEYS[2])
return {1}
";

/// KEYS[1] a user's lock hash; ARGV[1] failures, ARGV[2] locked until, ARGV[3]
/// seconds the key lives at least: merges a lock moved from a journal into the
/// one in Redis, keeping the larger count and the later end, so that moving a
/// journal again never undoes what the servers counted since. Returns {f, u}.
const MERGE_LOCK: &str = r"
local now = redis.call('HMGET', KEYS[1], 'f', 'u')
local f = math.max(tonumber(now[1] or '0'), tonumber(ARGV[1]))
local u = math.max(tonumber(now[2] or '0'), tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'f', f, 'u', u)
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return {f, u}
";

/// KEYS[1] an answered State, KEYS[2] the user's answered States (a sorted set,
/// scored by expiry); ARGV[1] the user, ARGV[2] seconds the State lives, ARGV[3]
/// its expiry, ARGV[4] now, ARGV[5] the most one user may hold, ARGV[6] the
/// State's id. {1}: answered now; {0}: answered before; {-1, held}: the user
/// holds the most already (a flood of answers), nothing recorded.
const USE_STATE: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
local held = redis.call('ZCARD', KEYS[2])
if held >= tonumber(ARGV[5]) then return {-1, held} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[6])
if redis.call('TTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
return {1}
";

pub(super) struct Scripts {
    pub raise: Script,
    pub swap_lock: Script,
    pub join: Script,
    pub count: Script,
    pub take_unless_locked: Script,
    pub merge_lock: Script,
    pub use_state: Script,
    pub claim_login: Script,
}

impl Scripts {
    pub fn new() -> Scripts {
        Scripts {
            raise: Script::new(RAISE),
            swap_lock: Script::new(SWAP_LOCK),
            join: Script::new(JOIN),
            count: Script::new(COUNT),
            take_unless_locked: Script::new(TAKE_UNLESS_LOCKED),
            merge_lock: Script::new(MERGE_LOCK),
            use_state: Script::new(USE_STATE),
            claim_login: Script::new(CLAIM_LOGIN),
        }
    }

    /// Every script's text, for SCRIPT LOAD on a new connection.
    pub fn texts() -> [&'static str; 8] {
        [RAISE, SWAP_LOCK, JOIN, COUNT, TAKE_UNLESS_LOCKED, MERGE_LOCK, USE_STATE, CLAIM_LOGIN]
    }
}
