package main

import "math/bits"

// histogram is a log-linear latency histogram in the style of HDR
// Histogram: values below 128 ns are exact; above, each power of two is
// split into 64 buckets, so any recorded value is known to within 1.6%.
// Memory is fixed (about 30 KiB) whatever the number of samples.
type histogram struct {
	counts   [histBuckets]uint64
	n        uint64
	min, max int64
}

const (
	histSubBits = 7
	histBuckets = (64-histSubBits+1)*(1<<(histSubBits-1)) + 1<<(histSubBits-1)
)

// bucket maps a non-negative value to its bucket index.
func bucket(v uint64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	e := bits.Len64(v) - histSubBits
	return e<<(histSubBits-1) + int(v>>e)
}

// bucketValue is the middle of bucket i's value range.
func bucketValue(i int) int64 {
	if i < 1<<histSubBits {
		return int64(i)
	}
	e := i>>(histSubBits-1) - 1
	m := uint64(i - e<<(histSubBits-1))
	lo := m << e
	return int64(lo + (uint64(1)<<e)/2)
}

// record adds one value in nanoseconds; negative values (clock steps)
// count as zero.
func (h *histogram) record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[bucket(uint64(v))]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
}

// merge adds o's samples to h.
func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
}

// quantile returns the value at quantile q (0..1); the exact maximum for
// q = 1 and 0 when empty.
func (h *histogram) quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(q*float64(h.n)) + 1
	if rank > h.n {
		rank = h.n
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(max(bucketValue(i), h.min), h.max)
		}
	}
	return h.max
}
