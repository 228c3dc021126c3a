package auth

import (
	"container/list"
	"sync"
	"time"
)

// BanConfig is the failure policy per source address ([auth] in the config
// file). Zero fields take the defaults; a negative After never bans and a
// negative Delay never delays.
type BanConfig struct {
	After    int           // failures in Window that ban the source (ban_after, 10)
	Window   time.Duration // ban_window, 1m
	BanTime  time.Duration // how long a ban lasts (ban_time, 5m)
	Delay    time.Duration // delay after the first failure (failure_delay, 250ms)
	DelayMax time.Duration // the delay doubles per failure up to this (failure_delay_max, 5s)
}

// Ban defaults.
const (
	DefaultBanAfter    = 10
	DefaultBanWindow   = time.Minute
	DefaultBanTime     = 5 * time.Minute
	DefaultDelay       = 250 * time.Millisecond
	DefaultDelayMax    = 5 * time.Second
	MaxTrackedSources  = 100_000
	pruneBatchPerCheck = 16
)

func (c BanConfig) withDefaults() BanConfig {
	if c.After == 0 {
		c.After = DefaultBanAfter
	}
	if c.Window <= 0 {
		c.Window = DefaultBanWindow
	}
	if c.BanTime <= 0 {
		c.BanTime = DefaultBanTime
	}
	if c.Delay == 0 {
		c.Delay = DefaultDelay
	}
	if c.DelayMax <= 0 {
		c.DelayMax = DefaultDelayMax
	}
	if c.Delay > c.DelayMax {
		c.Delay = c.DelayMax
	}
	return c
}

// BanTracker counts login failures per source address, returns a growing
// delay per failure, and bans a source that fails After times within
// Window for BanTime (flapping / brute-force protection, like EMQX's flapping
// detection and fail2ban). Its memory is bounded: at most MaxTrackedSources
// sources, expired ones pruned as it goes, the least recently failed
// evicted when full. It is safe for concurrent use.
type BanTracker struct {
	cfg BanConfig
	max int

	mu    sync.Mutex
	m     map[string]*list.Element // of *source
	order list.List                // least recently failed first
}

type source struct {
	key         string
	first       time.Time // start of the current window
	failures    int       // in the window
	bannedUntil time.Time
}

// expired reports whether the entry no longer matters at now.
func (s *source) expired(now time.Time, window time.Duration) bool {
	return !now.Before(s.first.Add(window)) && !now.Before(s.bannedUntil)
}

// NewBanTracker returns a tracker with cfg (zero fields take defaults).
func NewBanTracker(cfg BanConfig) *BanTracker {
	return &BanTracker{cfg: cfg.withDefaults(), max: MaxTrackedSources, m: make(map[string]*list.Element)}
}

// Config is the tracker's configuration, defaults applied.
func (b *BanTracker) Config() BanConfig { return b.cfg }

// Banned reports whether ip is banned at now.
func (b *BanTracker) Banned(ip string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.m[ip]
	return e != nil && now.Before(e.Value.(*source).bannedUntil)
}

// Fail records a failed login from ip at now. It returns how long to wait
// before answering (Delay, doubling per failure in the window, at most
// DelayMax) and whether ip is now banned.
func (b *BanTracker) Fail(ip string, now time.Time) (delay time.Duration, banned bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.prune(now)
	var s *source
	if e := b.m[ip]; e != nil {
		s = e.Value.(*source)
		b.order.MoveToBack(e)
	} else {
		if len(b.m) >= b.max {
			oldest := b.order.Front()
			delete(b.m, oldest.Value.(*source).key)
			b.order.Remove(oldest)
		}
		s = &source{key: ip, first: now}
		b.m[ip] = b.order.PushBack(s)
	}
	if !now.Before(s.first.Add(b.cfg.Window)) {
		s.first, s.failures = now, 0
	}
	s.failures++
	if b.cfg.Delay > 0 {
		delay = b.cfg.Delay
		for i := 1; i < s.failures && delay < b.cfg.DelayMax; i++ {
			delay *= 2
		}
		delay = min(delay, b.cfg.DelayMax)
	}
	if b.cfg.After > 0 && s.failures >= b.cfg.After {
		s.bannedUntil = now.Add(b.cfg.BanTime)
		s.first, s.failures = now, 0 // after the ban, a fresh window
	}
	banned = now.Before(s.bannedUntil)
	return delay, banned
}

// Succeed forgets ip's failures after a successful login.
func (b *BanTracker) Succeed(ip string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.m[ip]; e != nil {
		delete(b.m, ip)
		b.order.Remove(e)
	}
}

// Len is the number of sources tracked.
func (b *BanTracker) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}

// BannedCount is the number of sources banned at now.
func (b *BanTracker) BannedCount(now time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, e := range b.m {
		if now.Before(e.Value.(*source).bannedUntil) {
			n++
		}
	}
	return n
}

// prune drops a few expired entries from the least recently failed end.
// Called with mu held.
func (b *BanTracker) prune(now time.Time) {
	for i := 0; i < pruneBatchPerCheck; i++ {
		e := b.order.Front()
		if e == nil {
			return
		}
		s := e.Value.(*source)
		if !s.expired(now, b.cfg.Window) {
			return
		}
		delete(b.m, s.key)
		b.order.Remove(e)
	}
}

// LogLimiter lets at most one log line per key through per interval, and
// counts the lines it held back so the next line can report them. Memory is
// bounded: past its key limit it forgets keys quiet for an interval, and if
// still full, keys share one entry. It is safe for concurrent use.
type LogLimiter struct {
	every time.Duration
	max   int

	mu sync.Mutex
	m  map[string]*logKey
}

type logKey struct {
	last       time.Time
	suppressed uint64
}

// logOverflow is the shared key of keys past the limit.
const logOverflow = "\x00overflow"

// NewLogLimiter returns a limiter of one line per key per every (10 s if
// not positive), remembering at most maxKeys keys (4096 if not positive).
func NewLogLimiter(every time.Duration, maxKeys int) *LogLimiter {
	if every <= 0 {
		every = 10 * time.Second
	}
	if maxKeys <= 0 {
		maxKeys = 4096
	}
	return &LogLimiter{every: every, max: maxKeys, m: make(map[string]*logKey)}
}

// Allow reports whether a line for key may be logged at now, and how many
// lines for key were suppressed since the last one let through.
func (l *LogLimiter) Allow(key string, now time.Time) (ok bool, suppressed uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.m[key]
	if e == nil {
		if len(l.m) >= l.max {
			for k, v := range l.m {
				if now.Sub(v.last) >= l.every {
					delete(l.m, k)
				}
			}
			if len(l.m) >= l.max {
				key = logOverflow
				e = l.m[key]
			}
		}
		if e == nil {
			l.m[key] = &logKey{last: now}
			return true, 0
		}
	}
	if now.Sub(e.last) < l.every {
		e.suppressed++
		return false, 0
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	return true, n
}
