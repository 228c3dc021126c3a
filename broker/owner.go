package broker

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Owner keys. Every session has one: it decides who may resume the
// session (client-id ownership, issue 8 item 4) and whom the per-user
// quotas count against (persistent sessions, retained messages).
//
//   - A user (Identity.Name != "") is its name. A name that begins with
//     '@' gets one more '@' in front, so no user name can equal an
//     anonymous key.
//   - An anonymous client is "" (one pool shared by every anonymous
//     client, the zero configuration), or "@" + its source IP when
//     Config.AnonymousOwnerByAddress is set (authentication configured).
//
// A session owned by "" is unowned: any client may resume it, and it then
// belongs to that client. Only anonymous clients of the zero configuration
// create such sessions, and records written before owners existed decode
// with "", so upgrading keeps every device's session.
//
// Retained messages count against the publisher's retained owner: its
// owner key, except that an anonymous publisher whose owner key is ""
// counts per client id ("@client:" + id), as the plan's "anonymous
// clients count per client id" asks. "" (the broker itself: a will
// published without a session, records from before owners) counts only
// against the totals.

// ownerKey derives the owner key of a session opened by id from remoteAddr.
func ownerKey(id Identity, remoteAddr string, byAddr bool) string {
	if id.Name != "" && !id.Anonymous {
		if strings.HasPrefix(id.Name, "@") {
			return "@" + id.Name
		}
		return id.Name
	}
	if !byAddr {
		return ""
	}
	return "@" + hostOf(remoteAddr)
}

// retainedOwnerKey is the retained-message owner of a session with owner
// key owner and client id sid.
func retainedOwnerKey(owner string, sid SessionID) string {
	if owner != "" {
		return owner
	}
	return "@client:" + string(sid)
}

// hostOf returns the IP of a host:port address in canonical form
// (IPv4-mapped IPv6 unmapped), or the address itself when it has none.
func hostOf(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap().WithZone("").String()
	}
	return host
}

// OwnerKey reports the owner key a session of identity id connecting from
// remoteAddr gets under the router's configuration (see owner.go).
func (r *Router) OwnerKey(id Identity, remoteAddr string) string {
	return ownerKey(id, remoteAddr, r.cfg.AnonymousOwnerByAddress)
}

// logEvery is the interval of a rate-limited log line.
const logEvery = 10 * time.Second

// rateLog lets one log line through per interval and counts the ones it
// held back, so an attack that hits a limit a million times writes a
// handful of lines, each with the number it stands for.
type rateLog struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether to log now and how many lines were suppressed
// since the last one that was.
func (l *rateLog) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < logEvery {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}

// authCacheMax bounds a session's cached publish answers; a full cache
// is emptied and refilled.
const authCacheMax = 64

// authCache holds a session's recent Authorizer answers for publishing, by
// destination, so that a publisher repeating topics does no ACL work and
// no allocation on the publish path. Both the connection's read loop and
// its pipeline goroutine publish for a session, so a mutex guards it (a
// leaf lock, uncontended in practice).
type authCache struct {
	mu     sync.Mutex
	gen    uint64
	topics map[string]bool // OpPublish
	queues map[string]bool // OpQueueSend
}

// allowPublish asks the authorizer whether s may perform op (OpPublish or
// OpQueueSend) on dest, through s's cache. A nil s (the broker itself) may
// do anything.
func (r *Router) allowPublish(s *Session, op Op, dest string) bool {
	if s == nil {
		return true
	}
	if r.allowAll {
		return true
	}
	var gen uint64
	if r.authGen != nil {
		gen = r.authGen.Generation()
	}
	c := &s.auth
	c.mu.Lock()
	if c.gen != gen {
		clear(c.topics)
		clear(c.queues)
		c.gen = gen
	}
	m := &c.topics
	if op == OpQueueSend {
		m = &c.queues
	}
	ok, hit := (*m)[dest]
	c.mu.Unlock()
	if hit {
		return ok
	}
	// Asked outside the lock: an Authorizer may be slow. A concurrent
	// reload between the call and the store below is caught by the
	// generation read before the call.
	ok = r.cfg.Authorizer.Allow(s.Identity, s.AuthClientID(), op, dest)
	c.mu.Lock()
	if c.gen == gen {
		if *m == nil {
			*m = make(map[string]bool, 8)
		}
		if len(*m) >= authCacheMax {
			clear(*m)
		}
		(*m)[dest] = ok
	}
	c.mu.Unlock()
	return ok
}
