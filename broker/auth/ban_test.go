package auth

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestBanTrackerDelayAndBan(t *testing.T) {
	b := NewBanTracker(BanConfig{After: 5, Window: time.Minute, BanTime: 5 * time.Minute, Delay: 100 * time.Millisecond, DelayMax: time.Second})
	want := []time.Duration{100, 200, 400, 800, 1000}
	now := t0
	for i, w := range want {
		if b.Banned("1.2.3.4", now) {
			t.Fatalf("banned after %d failures", i)
		}
		d, banned := b.Fail("1.2.3.4", now)
		if d != w*time.Millisecond {
			t.Errorf("failure %d: delay %v, want %v", i+1, d, w*time.Millisecond)
		}
		if banned != (i == 4) {
			t.Errorf("failure %d: banned %v", i+1, banned)
		}
		now = now.Add(time.Second)
	}
	if !b.Banned("1.2.3.4", now) || b.Banned("5.6.7.8", now) {
		t.Fatal("ban not per source")
	}
	if b.BannedCount(now) != 1 {
		t.Fatalf("BannedCount %d", b.BannedCount(now))
	}
	// The ban lasts BanTime from the last failure.
	if !b.Banned("1.2.3.4", t0.Add(4*time.Second+5*time.Minute-time.Nanosecond)) {
		t.Fatal("ban ended early")
	}
	if b.Banned("1.2.3.4", t0.Add(4*time.Second+5*time.Minute)) {
		t.Fatal("ban did not end")
	}
}

func TestBanTrackerWindow(t *testing.T) {
	b := NewBanTracker(BanConfig{After: 3, Window: time.Minute})
	b.Fail("a", t0)
	b.Fail("a", t0.Add(10*time.Second))
	// The window has passed: counting starts again.
	d, banned := b.Fail("a", t0.Add(61*time.Second))
	if banned || d != DefaultDelay {
		t.Fatalf("after the window: delay %v banned %v", d, banned)
	}
	b.Fail("a", t0.Add(62*time.Second))
	if _, banned := b.Fail("a", t0.Add(63*time.Second)); !banned {
		t.Fatal("3 failures in the window did not ban")
	}
}

func TestBanTrackerSucceedResets(t *testing.T) {
	b := NewBanTracker(BanConfig{After: 3})
	b.Fail("a", t0)
	b.Fail("a", t0)
	b.Succeed("a")
	if b.Len() != 0 {
		t.Fatal("Succeed kept the entry")
	}
	if d, banned := b.Fail("a", t0); banned || d != DefaultDelay {
		t.Fatalf("after Succeed: %v %v", d, banned)
	}
}

func TestBanTrackerNeverBans(t *testing.T) {
	b := NewBanTracker(BanConfig{After: -1, Delay: -1})
	for range 100 {
		if d, banned := b.Fail("a", t0); banned || d != 0 {
			t.Fatalf("After -1, Delay -1: %v %v", d, banned)
		}
	}
}

func TestBanTrackerDefaults(t *testing.T) {
	c := NewBanTracker(BanConfig{}).Config()
	if c.After != 10 || c.Window != time.Minute || c.BanTime != 5*time.Minute || c.Delay != 250*time.Millisecond || c.DelayMax != 5*time.Second {
		t.Fatalf("defaults %+v", c)
	}
}

func TestBanTrackerBounded(t *testing.T) {
	b := NewBanTracker(BanConfig{After: 2})
	b.max = 100
	b.Fail("victim", t0)
	b.Fail("victim", t0) // banned
	for i := range 150 {
		b.Fail(fmt.Sprint("src", i), t0.Add(time.Second))
	}
	if b.Len() != 100 {
		t.Fatalf("%d sources tracked, limit 100", b.Len())
	}
	// The oldest (the victim) was evicted to make room.
	if b.Banned("victim", t0.Add(time.Second)) {
		t.Fatal("oldest entry kept past the limit")
	}
	// Expired entries are pruned as failures arrive.
	late := t0.Add(time.Hour)
	for i := range 10 {
		b.Fail(fmt.Sprint("late", i), late)
	}
	if b.Len() >= 100 {
		t.Fatalf("expired entries not pruned: %d", b.Len())
	}
}

func TestLogLimiter(t *testing.T) {
	l := NewLogLimiter(10*time.Second, 3)
	if ok, n := l.Allow("a", t0); !ok || n != 0 {
		t.Fatal("first line held back")
	}
	for i := range 5 {
		if ok, _ := l.Allow("a", t0.Add(time.Duration(i)*time.Second)); ok {
			t.Fatal("second line within the interval let through")
		}
	}
	if ok, _ := l.Allow("b", t0); !ok {
		t.Fatal("another key held back")
	}
	ok, n := l.Allow("a", t0.Add(10*time.Second))
	if !ok || n != 5 {
		t.Fatalf("after the interval: ok %v suppressed %d, want true 5", ok, n)
	}
	// Bounded: keys past the limit share one entry.
	l.Allow("c", t0)
	if ok, _ := l.Allow("d", t0); !ok {
		t.Fatal("overflow entry: first line held back")
	}
	if ok, _ := l.Allow("e", t0); ok {
		t.Fatal("overflow keys not sharing one entry")
	}
	if len(l.m) > 4 {
		t.Fatalf("%d keys", len(l.m))
	}
}
