package broker

import (
	"reflect"
	"testing"
	"time"
)

// TestConnCountsKept: ConnCounts, kept at Open and Session.Close, matches
// a walk over the connected sessions through opens, closes, a takeover of
// a persistent session (which stays kept offline) and a refused Open.
func TestConnCountsKept(t *testing.T) {
	r := New(Config{}, nil)
	open := func(id SessionID, proto, version, transport string, expiry time.Duration) *Session {
		t.Helper()
		s, err := r.Open(id, SessionOptions{Protocol: proto, Version: version, Transport: transport, RemoteAddr: "test", Expiry: expiry})
		if err != nil {
			t.Fatalf("Open(%q): %v", id, err)
		}
		return s
	}
	walk := func() []ConnCount {
		var out []ConnCount
		for _, s := range r.Sessions() {
			if !s.Online {
				continue
			}
			sess := r.sessions[SessionID(s.ID)]
			found := false
			for i := range out {
				if out[i].Protocol == sess.Protocol && out[i].Version == sess.Version && out[i].Transport == sess.Transport {
					out[i].N++
					found = true
				}
			}
			if !found {
				out = append(out, ConnCount{Protocol: sess.Protocol, Version: sess.Version, Transport: sess.Transport, N: 1})
			}
		}
		return out
	}
	check := func(step string, want []ConnCount) {
		t.Helper()
		got := r.ConnCounts()
		if len(got) == 0 {
			got = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: ConnCounts = %+v, want %+v", step, got, want)
		}
	}
	a := open("a", "mqtt", "5.0", "ws", time.Hour)
	b := open("b", "stomp", "1.2", "tcp", 0)
	open("c", "stomp", "1.2", "tcp", 0)
	check("three open", []ConnCount{{"mqtt", "5.0", "ws", 1}, {"stomp", "1.2", "tcp", 2}})
	r.Close(b, CloseClientClosed)
	b.Close(CloseClientClosed) // a second close counts nothing
	check("b closed", []ConnCount{{"mqtt", "5.0", "ws", 1}, {"stomp", "1.2", "tcp", 1}})
	r.Close(a, CloseClientClosed) // kept offline: not connected
	check("a offline", []ConnCount{{"stomp", "1.2", "tcp", 1}})
	a2 := open("a", "mqtt", "3.1.1", "tcp", time.Hour)
	open("a", "mqtt", "5.0", "wss", time.Hour) // takes a2 over
	if !a2.Closed() {
		t.Fatal("the taken-over session is not closed")
	}
	check("a taken over", []ConnCount{{"mqtt", "5.0", "wss", 1}, {"stomp", "1.2", "tcp", 1}})
	r.mu.RLock()
	w := walk()
	r.mu.RUnlock()
	if len(w) != 2 {
		t.Errorf("walk = %+v, want the same two groups", w)
	}
	if err := r.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	check("after shutdown", nil)
}
