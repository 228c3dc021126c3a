package subprotocol

import "sync"

// Pipeline runs a connection's jobs in order, in batches, on a goroutine
// started on demand and gone when idle, so an idle connection costs no
// goroutine. The read loop submits and goes on reading; whatever queued up
// while the last batch ran makes the next one. MQTT and STOMP use it for
// publishes that wait on a store commit: a batch shares one commit, and
// each job is acknowledged in order after it.
//
// The zero value is ready to use. Busy and Drain also take a nil
// *Pipeline (no job ever submitted), so a connection can allocate its
// pipeline on first use and idle connections carry none.
type Pipeline[J any] struct {
	mu      sync.Mutex
	cond    sync.Cond // signalled when jobs shrink or the runner stops; L is mu
	jobs    []J
	running bool
}

// PipelineMax bounds the jobs waiting in a Pipeline; past it Submit waits,
// which slows only the submitting client.
const PipelineMax = 256

// Busy reports queued or running jobs: a job that must not overtake them
// goes through the pipeline too.
func (p *Pipeline[J]) Busy() bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running || len(p.jobs) > 0
}

// Submit queues j, waiting while PipelineMax jobs wait, and starts a runner
// that calls run with each batch unless one runs. One goroutine (the read
// loop) submits; run must not Submit or Drain.
func (p *Pipeline[J]) Submit(j J, run func([]J)) {
	p.mu.Lock()
	p.cond.L = &p.mu
	for len(p.jobs) >= PipelineMax {
		p.cond.Wait()
	}
	p.jobs = append(p.jobs, j)
	if !p.running {
		p.running = true
		go p.loop(run)
	}
	p.mu.Unlock()
}

// loop runs batches until no job waits.
func (p *Pipeline[J]) loop(run func([]J)) {
	for {
		p.mu.Lock()
		jobs := p.jobs
		p.jobs = nil
		if len(jobs) == 0 {
			p.running = false
		}
		p.cond.Broadcast()
		p.mu.Unlock()
		if len(jobs) == 0 {
			return
		}
		run(jobs)
	}
}

// Drain waits until every submitted job has run.
func (p *Pipeline[J]) Drain() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.cond.L = &p.mu
	for p.running || len(p.jobs) > 0 {
		p.cond.Wait()
	}
	p.mu.Unlock()
}
