package main

import (
	"fmt"
	"strings"
	"time"
)

// result is one benchmark outcome: a single output line.
type result struct {
	name   string   // "stomp throughput 1->1 64B"
	fields []string // "187432 msg/s delivered", ...
	fails  []string // why the run does not count
}

// add appends a formatted field.
func (r *result) add(format string, a ...any) {
	r.fields = append(r.fields, fmt.Sprintf(format, a...))
}

// fail records a benchmark failure.
func (r *result) fail(format string, a ...any) {
	r.fails = append(r.fails, fmt.Sprintf(format, a...))
}

// String is the result line: "name: field, field, ..., FAIL: why; why".
func (r *result) String() string {
	var b strings.Builder
	b.WriteString(r.name)
	b.WriteString(": ")
	b.WriteString(strings.Join(r.fields, ", "))
	if len(r.fails) > 0 {
		if len(r.fields) > 0 {
			b.WriteString(", ")
		}
		b.WriteString("FAIL: ")
		b.WriteString(strings.Join(r.fails, "; "))
	}
	return b.String()
}

// fmtSize formats a byte count as 64B, 1KiB, 1536B.
func fmtSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// fmtBytes formats a memory amount with a binary unit and one decimal.
func fmtBytes(n float64) string {
	neg := ""
	if n < 0 {
		neg, n = "-", -n
	}
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%s%.1f GiB", neg, n/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%s%.1f MiB", neg, n/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%s%.1f KiB", neg, n/(1<<10))
	}
	return fmt.Sprintf("%s%.0f B", neg, n)
}

// fmtMs formats nanoseconds as milliseconds with about three digits.
func fmtMs(ns int64) string {
	ms := float64(ns) / 1e6
	switch {
	case ms < 1:
		return fmt.Sprintf("%.3f ms", ms)
	case ms < 100:
		return fmt.Sprintf("%.2f ms", ms)
	}
	return fmt.Sprintf("%.0f ms", ms)
}

// fmtDur formats a duration for a result line: milliseconds below one
// second (as fmtMs), seconds with two decimals above.
func fmtDur(d time.Duration) string {
	if d < time.Second {
		return fmtMs(int64(d))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// addLatency appends p50, p90, p99 and max of h.
func (r *result) addLatency(h *histogram) {
	if h.n == 0 {
		return
	}
	r.add("p50 %s", fmtMs(h.quantile(0.50)))
	r.add("p90 %s", fmtMs(h.quantile(0.90)))
	r.add("p99 %s", fmtMs(h.quantile(0.99)))
	r.add("max %s", fmtMs(h.max))
}

// addBrokerCPU appends the broker's CPU per delivery and its share of one
// core over wall.
func (r *result) addBrokerCPU(cpu time.Duration, ok bool, deliveries int64, wall time.Duration) {
	if !ok || deliveries <= 0 {
		return
	}
	us := float64(cpu.Microseconds()) / float64(deliveries)
	r.add("broker %.2f cpu-us/delivery (%.0f%% of a core)", us, 100*cpu.Seconds()/wall.Seconds())
}
