package main

import "testing"

func TestTopologyShapes(t *testing.T) {
	cases := []struct {
		pubs, subs, topics, subsOfPub0, pubsOfSub0 int
	}{
		{1, 1, 1, 1, 1},
		{10, 10, 10, 1, 1},
		{1, 100, 1, 100, 1},
		{10, 1, 1, 1, 10},
		{3, 2, 1, 2, 3},
		{2, 0, 2, 0, 1},
	}
	for _, c := range cases {
		tp := newTopology(c.pubs, c.subs)
		if tp.topics != c.topics || len(tp.subsOf(0)) != c.subsOfPub0 {
			t.Errorf("%d->%d: topics %d, subsOf(0) %d", c.pubs, c.subs, tp.topics, len(tp.subsOf(0)))
		}
		if c.subs > 0 && len(tp.pubsOf(0)) != c.pubsOfSub0 {
			t.Errorf("%d->%d: pubsOf(0) %d", c.pubs, c.subs, len(tp.pubsOf(0)))
		}
	}
}
