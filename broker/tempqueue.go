package broker

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// TempQueuePrefix starts the name of every temporary (reply) queue.
const TempQueuePrefix = "tmp."

// TempQueue creates a queue private to s, deleted when s closes, for
// request/reply (STOMP /temp-queue). It returns the queue's name, which
// other sessions may send to but not consume from.
func (r *Router) TempQueue(s *Session) (string, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := TempQueuePrefix + hex.EncodeToString(b[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Closed() {
		return "", ErrSessionClosed
	}
	s.tempQueues = append(s.tempQueues, name)
	r.qmu.Lock()
	r.queues[name] = newQueue(name, s)
	r.qmu.Unlock()
	return name, nil
}

func (r *Router) dropTempQueues(names []string) {
	if len(names) == 0 {
		return
	}
	r.qmu.Lock()
	for _, name := range names {
		delete(r.queues, name)
	}
	r.qmu.Unlock()
}

// queueFor returns the named queue, creating a shared one if needed. A
// temporary queue may only be consumed by its owner.
func (r *Router) queueFor(name string, s *Session) (*queue, error) {
	r.qmu.Lock()
	defer r.qmu.Unlock()
	q := r.queues[name]
	if q == nil {
		if strings.HasPrefix(name, TempQueuePrefix) {
			return nil, ErrInvalidQueue
		}
		q = newQueue(name, nil)
		r.queues[name] = q
	}
	if q.owner != nil && q.owner != s {
		return nil, ErrQueueExclusive
	}
	return q, nil
}

func (r *Router) queueOf(sub *Subscription) *queue {
	r.qmu.Lock()
	defer r.qmu.Unlock()
	return r.queues[sub.Queue]
}
