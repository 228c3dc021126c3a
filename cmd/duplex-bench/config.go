package main

import (
	"flag"
	"fmt"
	"time"
)

// config holds the command-line flags.
type config struct {
	url       string
	protocol  string
	qos       int
	scenario  string
	pubs      int
	subs      int
	size      int
	duration  time.Duration
	warmup    time.Duration
	conns     int
	sourceIPs int
	brokerPID int
	rate      float64
	window    int
	timeout   time.Duration
	deadline  time.Duration
}

// Scenarios.
const (
	scenarioThroughput = "throughput"
	scenarioLatency    = "latency"
	scenarioIdle       = "idle"
	scenarioProbe      = "probe"
)

// minBody is the smallest body: send time (8 bytes), publisher (4) and
// sequence number (8).
const minBody = 20

// parseFlags parses args into a config and checks it.
func parseFlags(args []string) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("duplex-bench", flag.ContinueOnError)
	fs.StringVar(&c.url, "url", "ws://127.0.0.1:8080/ws", "broker WebSocket `URL`")
	fs.StringVar(&c.protocol, "protocol", protoSTOMP, "stomp (STOMP 1.2, subprotocol v12.stomp) or mqtt (MQTT 3.1.1, subprotocol mqtt)")
	fs.IntVar(&c.qos, "qos", 0, "MQTT QoS `0 or 1` of publications and subscriptions (QoS 1: subscribers PUBACK, publishers wait for PUBACKs)")
	fs.StringVar(&c.scenario, "scenario", scenarioThroughput, "throughput, latency, idle, or probe (one connection and subscription: does the broker speak -protocol?)")
	fs.IntVar(&c.pubs, "pubs", 1, "publishers (throughput, latency)")
	fs.IntVar(&c.subs, "subs", 1, "subscribers (throughput, latency); with -pubs decides the topics: equal counts pair publisher i with subscriber i, one publisher fans out to every subscriber")
	fs.IntVar(&c.size, "size", 64, fmt.Sprintf("message body `bytes` (at least %d)", minBody))
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "measured time (idle: longest wait for the broker's memory to settle)")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "unmeasured time before -duration")
	fs.IntVar(&c.conns, "conns", 10000, "connections (idle)")
	fs.IntVar(&c.sourceIPs, "source-ips", 0, "spread client sockets over `N` source addresses 127.0.0.2, 127.0.0.3, ... (0: kernel's choice)")
	fs.IntVar(&c.brokerPID, "broker-pid", 0, "broker process `id`, for its CPU and memory from /proc (0: not measured)")
	fs.Float64Var(&c.rate, "rate", 0, "published messages/s over all publishers (0: as fast as flow control allows; latency default 5000)")
	fs.IntVar(&c.window, "window", 256, "most messages in flight to any one subscriber (must stay below the broker's -max-pending-msgs)")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "timeout for each connect, subscribe and disconnect")
	fs.DurationVar(&c.deadline, "deadline", 0, "hard limit on the whole run (0: derived from the other flags)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return c, c.check()
}

// check validates the flags and fills scenario defaults.
func (c *config) check() error {
	switch c.protocol {
	case protoSTOMP:
		if c.qos != 0 {
			return fmt.Errorf("-qos %d: only for -protocol mqtt", c.qos)
		}
	case protoMQTT:
		if c.qos != 0 && c.qos != 1 {
			return fmt.Errorf("-qos %d: want 0 or 1", c.qos)
		}
	default:
		return fmt.Errorf("-protocol %q: want stomp or mqtt", c.protocol)
	}
	switch c.scenario {
	case scenarioThroughput, scenarioProbe:
	case scenarioLatency:
		if c.rate == 0 {
			c.rate = 5000
		}
	case scenarioIdle:
		if c.conns < 1 {
			return fmt.Errorf("-conns %d: want at least 1", c.conns)
		}
	default:
		return fmt.Errorf("-scenario %q: want throughput, latency, idle or probe", c.scenario)
	}
	if c.scenario == scenarioThroughput || c.scenario == scenarioLatency {
		if c.pubs < 1 || c.subs < 0 || c.pubs+c.subs > 10000 {
			return fmt.Errorf("-pubs %d -subs %d: want 1 or more publishers, 0 or more subscribers, 10000 connections at most", c.pubs, c.subs)
		}
		if c.size < minBody || c.size > 1<<22 {
			return fmt.Errorf("-size %d: want %d..%d", c.size, minBody, 1<<22)
		}
		if c.window < 4 {
			return fmt.Errorf("-window %d: want at least 4", c.window)
		}
	}
	if c.duration <= 0 || c.warmup < 0 || c.rate < 0 || c.timeout <= 0 {
		return fmt.Errorf("-duration, -warmup, -rate and -timeout must not be negative (and -duration, -timeout not zero)")
	}
	if c.deadline == 0 {
		c.deadline = c.warmup + c.duration + 6*c.timeout + time.Minute
		if c.scenario == scenarioIdle {
			c.deadline += time.Duration(c.conns) * time.Millisecond
		}
	}
	return nil
}
