package subprotocol

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Jobs run in order, in batches of whatever queued up while the previous
// batch ran, and Drain returns only once all have run.
func TestPipelineOrderAndBatches(t *testing.T) {
	var (
		p       Pipeline[int]
		mu      sync.Mutex
		got     []int
		batches []int
	)
	gate, entered := make(chan struct{}), make(chan struct{})
	first := true
	run := func(jobs []int) {
		if first {
			first = false
			close(entered)
			<-gate // hold the first batch while more jobs queue up
		}
		mu.Lock()
		got = append(got, jobs...)
		batches = append(batches, len(jobs))
		mu.Unlock()
	}
	p.Submit(0, run)
	<-entered
	for i := 1; i <= 10; i++ {
		p.Submit(i, run)
	}
	if !p.Busy() {
		t.Fatal("Busy() false with a batch running")
	}
	close(gate)
	p.Drain()
	if p.Busy() {
		t.Fatal("Busy() true after Drain")
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}; !slices.Equal(got, want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
	if !slices.Equal(batches, []int{1, 10}) {
		t.Fatalf("batches %v, want [1 10]: the ten queued behind the first share one", batches)
	}
}

// At most PipelineMax jobs wait: Submit blocks past that and goes on once
// they run.
func TestPipelineBounded(t *testing.T) {
	var p Pipeline[int]
	gate, entered := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var ran atomic.Int64
	run := func(jobs []int) {
		once.Do(func() { close(entered) })
		<-gate
		ran.Add(int64(len(jobs)))
	}
	var submitted atomic.Int64
	done := make(chan struct{})
	go func() {
		for i := 0; i < PipelineMax+5; i++ {
			p.Submit(i, run)
			submitted.Add(1)
		}
		close(done)
	}()
	<-entered // one job runs, held at the gate
	deadline := time.Now().Add(5 * time.Second)
	for submitted.Load() < PipelineMax+1 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d submitted", submitted.Load())
		}
		runtime.Gosched()
	}
	p.mu.Lock()
	waiting := len(p.jobs)
	p.mu.Unlock()
	if waiting > PipelineMax {
		t.Fatalf("%d jobs waiting, limit %d", waiting, PipelineMax)
	}
	close(gate)
	<-done
	p.Drain()
	if n := ran.Load(); n != PipelineMax+5 {
		t.Fatalf("ran %d jobs, want %d", n, PipelineMax+5)
	}
}
