package main

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestHistogramQuantilesWithinPrecision(t *testing.T) {
	var h histogram
	var vals []int64
	for range 100000 {
		v := int64(rand.ExpFloat64() * 200000) // ~0.2 ms mean
		vals = append(vals, v)
		h.record(v)
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := vals[int(q*float64(len(vals)))]
		got := h.quantile(q)
		if d := float64(got-exact) / float64(exact); d > 0.02 || d < -0.02 {
			t.Errorf("q%.3f: got %d, exact %d", q, got, exact)
		}
	}
	if h.quantile(1) != vals[len(vals)-1] {
		t.Errorf("max %d, want %d", h.quantile(1), vals[len(vals)-1])
	}
}

func TestBucketMonotonic(t *testing.T) {
	prev := -1
	for v := uint64(0); v < 1<<20; v += 7 {
		b := bucket(v)
		if b < prev || b >= histBuckets {
			t.Fatalf("bucket(%d) = %d after %d", v, b, prev)
		}
		prev = b
	}
	if b := bucket(^uint64(0)); b != histBuckets-1 {
		t.Fatalf("largest bucket %d, want %d", b, histBuckets-1)
	}
}
