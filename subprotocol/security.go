package subprotocol

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Counters are a protocol's counts of refusals and drops (issue 8): what
// the admin API and logs report. The zero value is ready; every method is
// safe for concurrent use.
type Counters struct {
	authFailures     atomic.Uint64
	tooLargeLogin    atomic.Uint64
	publishDenied    atomic.Uint64
	subscribeDenied  atomic.Uint64
	retainRefused    atomic.Uint64
	headersDropped   atomic.Uint64
	credentialExpiry atomic.Uint64
	publishThrottled atomic.Uint64
}

// Stats is a snapshot of Counters.
type Stats struct {
	// AuthFailures counts connections refused at CONNECT: bad
	// credentials, not authorized, banned, client id owned by another
	// user, session quota.
	AuthFailures uint64
	// TooLargeBeforeLogin counts connections closed because the frame
	// or packet before login was over the smaller pre-login limit.
	TooLargeBeforeLogin uint64
	// PublishDenied counts publishes the ACL refused (MQTT 3.x drops them
	// silently, so this counter is the only trace).
	PublishDenied uint64
	// SubscribeDenied counts subscriptions the ACL refused.
	SubscribeDenied uint64
	// RetainRefused counts retained publishes delivered but not retained
	// because of the retained-message quota.
	RetainRefused uint64
	// HeadersDropped counts user headers (STOMP) or user properties
	// (MQTT 5) dropped past MaxOutboundHeaders from messages published in
	// the other protocol.
	HeadersDropped uint64
	// CredentialExpired counts connections closed because their
	// credential (a JWT) expired.
	CredentialExpired uint64
	// PublishThrottled counts publishes that waited for the per-connection
	// publish rate.
	PublishThrottled uint64
}

// AuthFailure counts a refused CONNECT.
func (c *Counters) AuthFailure() { c.authFailures.Add(1) }

// TooLargeBeforeLogin counts a connection closed for a pre-login frame
// over the limit.
func (c *Counters) TooLargeBeforeLogin() { c.tooLargeLogin.Add(1) }

// PublishDenied counts a publish the ACL refused.
func (c *Counters) PublishDenied() { c.publishDenied.Add(1) }

// SubscribeDenied counts a subscription the ACL refused.
func (c *Counters) SubscribeDenied() { c.subscribeDenied.Add(1) }

// RetainRefused counts a message delivered but not retained (quota).
func (c *Counters) RetainRefused() { c.retainRefused.Add(1) }

// HeadersDropped counts n outbound headers or properties dropped.
func (c *Counters) HeadersDropped(n int) { c.headersDropped.Add(uint64(n)) }

// CredentialExpired counts a connection closed when its credential
// expired.
func (c *Counters) CredentialExpired() { c.credentialExpiry.Add(1) }

// PublishThrottled counts a publish that waited for the rate limiter.
func (c *Counters) PublishThrottled() { c.publishThrottled.Add(1) }

// Snapshot returns the current counts.
func (c *Counters) Snapshot() Stats {
	return Stats{
		AuthFailures:        c.authFailures.Load(),
		TooLargeBeforeLogin: c.tooLargeLogin.Load(),
		PublishDenied:       c.publishDenied.Load(),
		SubscribeDenied:     c.subscribeDenied.Load(),
		RetainRefused:       c.retainRefused.Load(),
		HeadersDropped:      c.headersDropped.Load(),
		CredentialExpired:   c.credentialExpiry.Load(),
		PublishThrottled:    c.publishThrottled.Load(),
	}
}

// DefaultLogEvery is how often LogLimiter lets a line through per source.
const DefaultLogEvery = 10 * time.Second

// defaultLogSources bounds the sources a LogLimiter remembers.
const defaultLogSources = 4096

// LogLimiter rate-limits log lines per source address, so a client that
// fails to log in a thousand times a second costs one line per interval
// (issue 8: "a log line rate-limited per source"). Its memory is bounded:
// past its source limit, forgotten entries are swept, and sources that
// still do not fit share one entry. The zero value lets one line per
// DefaultLogEvery through per source; it is safe for concurrent use.
type LogLimiter struct {
	// Every is the interval between lines for one source (default
	// DefaultLogEvery).
	Every time.Duration
	// MaxSources bounds the sources tracked at once (default 4096).
	MaxSources int

	mu sync.Mutex
	m  map[string]*logSource
}

type logSource struct {
	last       time.Time
	suppressed uint64
}

// overflowSource is the shared entry of sources past MaxSources.
const overflowSource = "(other sources)"

// Allow reports whether a line about source may be logged at now, and how
// many lines for it were suppressed since the last one let through.
func (l *LogLimiter) Allow(source string, now time.Time) (ok bool, suppressed uint64) {
	every, max := l.Every, l.MaxSources
	if every <= 0 {
		every = DefaultLogEvery
	}
	if max <= 0 {
		max = defaultLogSources
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = make(map[string]*logSource)
	}
	e := l.m[source]
	if e == nil {
		if len(l.m) >= max {
			for k, v := range l.m { // sweep sources quiet for an interval
				if now.Sub(v.last) >= every {
					delete(l.m, k)
				}
			}
		}
		if len(l.m) >= max {
			source = overflowSource
			e = l.m[source]
		}
		if e == nil {
			l.m[source] = &logSource{last: now}
			return true, 0
		}
	}
	if now.Sub(e.last) < every {
		e.suppressed++
		return false, 0
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	return true, n
}

// Permit is Allow for a connection's remote address at the current time,
// with the suppressed count appended to args ("suppressed", n) when there
// is one: the protocols' rate-limited refusal log lines.
func (l *LogLimiter) Permit(remote net.Addr, args []any) ([]any, bool) {
	ok, suppressed := l.Allow(SourceHost(remote), time.Now())
	if ok && suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	return args, ok
}

// SourceHost is the host part of a remote address (the IP without the
// port), the key of per-source limits and logs.
func SourceHost(a net.Addr) string {
	if a == nil {
		return ""
	}
	s := a.String()
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return s
}

// PublishLimiter paces one connection's publishes to a message rate and a
// byte rate (golang.org/x/time/rate). The read loop calls Wait before it
// routes a publish (Delay, then Pause): while it waits the connection reads nothing, so the
// publisher is slowed by TCP back-pressure and nothing is dropped.
type PublishLimiter struct {
	msgs  *rate.Limiter // nil: no message rate
	bytes *rate.Limiter // nil: no byte rate
}

// NewPublishLimiter returns a limiter for msgRate messages per second with
// burst msgBurst (msgRate when 0 or less) and bytesRate bytes per second,
// or nil when both rates are 0 or less (off: nothing is allocated).
func NewPublishLimiter(msgRate float64, msgBurst int, bytesRate float64) *PublishLimiter {
	if msgRate <= 0 && bytesRate <= 0 {
		return nil
	}
	l := new(PublishLimiter)
	if msgRate > 0 {
		if msgBurst <= 0 {
			msgBurst = max(1, int(msgRate))
		}
		l.msgs = rate.NewLimiter(rate.Limit(msgRate), msgBurst)
	}
	if bytesRate > 0 {
		// One second's worth of bytes may go at once; a larger message
		// takes several reservations (see Wait).
		l.bytes = rate.NewLimiter(rate.Limit(bytesRate), max(1, int(min(bytesRate, 1<<30))))
	}
	return l
}

// Delay reserves one message of size bytes and returns how long the caller
// must wait before publishing it (0: at once). A message above the byte
// burst reserves it in burst-sized parts: each part goes into debt after
// the one before, so the last part's delay is the whole message's. A nil
// limiter never delays.
func (l *PublishLimiter) Delay(size int) time.Duration {
	if l == nil {
		return 0
	}
	now := time.Now()
	var delay time.Duration
	if l.msgs != nil {
		delay = l.msgs.ReserveN(now, 1).DelayFrom(now)
	}
	if l.bytes != nil && size > 0 {
		burst := l.bytes.Burst()
		for n := size; n > 0; n -= burst {
			if d := l.bytes.ReserveN(now, min(n, burst)).DelayFrom(now); d > delay {
				delay = d
			}
		}
	}
	return delay
}

// Wait paces a publish of size bytes: when Delay says to wait, it counts
// the publish in ctr (PublishThrottled) and waits, until ctx ends or done
// is closed (the connection ended). It reports whether it waited, so the
// caller extends its read deadline (the client's keepalives waited unread
// too). before, if not nil, runs first when it waits (the read loop's
// Stream.MayWait). A nil limiter never waits.
func (l *PublishLimiter) Wait(ctx context.Context, done <-chan struct{}, ctr *Counters, size int, before func()) bool {
	d := l.Delay(size)
	if d <= 0 {
		return false
	}
	if before != nil {
		before()
	}
	ctr.PublishThrottled()
	Pause(ctx, done, d)
	return true
}

// Pause waits for d, or until ctx ends or done is closed (the connection
// ended).
func Pause(ctx context.Context, done <-chan struct{}, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-done:
	case <-ctx.Done():
	}
}
