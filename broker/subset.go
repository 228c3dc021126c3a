package broker

import "iter"

// subSetSmall is how many subscriptions a session keeps in a slice before
// its subSet switches to a map. Most sessions hold one or a few: a slice
// of one costs 8 bytes where a map with one entry costs about 250.
const subSetSmall = 8

// subSet is a session's subscriptions by key (Subscription.Key): a slice
// while they are few, a map beyond subSetSmall. The zero value is empty.
// Session.mu guards it.
type subSet struct {
	few  []*Subscription
	many map[string]*Subscription
}

// get returns the subscription with key, or nil.
func (t *subSet) get(key string) *Subscription {
	if t.many != nil {
		return t.many[key]
	}
	for _, s := range t.few {
		if s.Key == key {
			return s
		}
	}
	return nil
}

// put adds sub under its key, replacing the subscription with that key.
func (t *subSet) put(sub *Subscription) {
	if t.many != nil {
		t.many[sub.Key] = sub
		return
	}
	for i, s := range t.few {
		if s.Key == sub.Key {
			t.few[i] = sub
			return
		}
	}
	if len(t.few) < subSetSmall {
		t.few = append(t.few, sub)
		return
	}
	t.many = make(map[string]*Subscription, 2*subSetSmall)
	for _, s := range t.few {
		t.many[s.Key] = s
	}
	t.many[sub.Key] = sub
	t.few = nil
}

// del removes the subscription with key and returns it, or nil.
func (t *subSet) del(key string) *Subscription {
	if t.many != nil {
		s := t.many[key]
		delete(t.many, key)
		return s
	}
	for i, s := range t.few {
		if s.Key == key {
			last := len(t.few) - 1
			t.few[i] = t.few[last]
			t.few[last] = nil // drop the reference for the garbage collector
			t.few = t.few[:last]
			return s
		}
	}
	return nil
}

// len is the number of subscriptions.
func (t *subSet) len() int {
	if t.many != nil {
		return len(t.many)
	}
	return len(t.few)
}

// all yields every subscription with its key, in no particular order. The
// set must not change during the iteration.
func (t *subSet) all() iter.Seq2[string, *Subscription] {
	return func(yield func(string, *Subscription) bool) {
		if t.many != nil {
			for k, s := range t.many {
				if !yield(k, s) {
					return
				}
			}
			return
		}
		for _, s := range t.few {
			if !yield(s.Key, s) {
				return
			}
		}
	}
}

// take empties the set and returns what it held as a map by key (the
// takeover paths, which edit and hand it on).
func (t *subSet) take() map[string]*Subscription {
	if t.many != nil {
		m := t.many
		t.many = nil
		return m
	}
	m := make(map[string]*Subscription, len(t.few))
	for _, s := range t.few {
		m[s.Key] = s
	}
	t.few = nil
	return m
}

// drain empties the set and returns what it held.
func (t *subSet) drain() []*Subscription {
	out := make([]*Subscription, 0, t.len())
	for _, s := range t.all() {
		out = append(out, s)
	}
	t.few, t.many = nil, nil
	return out
}
