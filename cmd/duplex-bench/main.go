// Command duplex-bench is Duplex's load generator: STOMP 1.2 or MQTT 3.1.1
// (-protocol) over WebSocket, spoken directly over gorilla/websocket with
// minimal, allocation-free codecs. It works against any broker that speaks
// the protocol over WebSocket (Mosquitto, for comparison).
//
// Scenarios (-scenario):
//
//	throughput  -pubs P publishers and -subs S subscribers on /topic/bench/<i>,
//	            as fast as flow control allows (or at -rate); reports delivered
//	            and published messages/s, publish-to-deliver latency and broker
//	            CPU per delivery.
//	latency     the same at a steady -rate (default 5000/s), latency first.
//	idle        -conns connections with one SUBSCRIBE each; reports the broker's
//	            resident memory per connection.
//	probe       one connection and one subscription: exits 0 when the broker
//	            speaks -protocol on -url, 1 when it does not.
//	adminapi    -conns idle connections (half STOMP on -url, half MQTT on
//	            -mqtt-url; all MQTT with -protocol mqtt), -offline persistent
//	            MQTT sessions left offline, then -requests timed GETs of
//	            /api/v1/overview and as many of /api/v1/clients (first page,
//	            later pages by cursor, q, sort), and a quarter as many of
//	            /api/v1/sessions; reports p50, p90, p99 and max of each
//	            (adminapi.go).
//
// Durable messaging, MQTT at QoS 1 only (-protocol mqtt; -qos is 1). The
// persistent subscriber is -client-id (default bench-durable-sub), connected
// without a clean session and subscribed to bench/durable; while it is
// offline the broker must store every message for it before the PUBACK:
//
//	durable     sets up the subscriber afresh and leaves it offline, then
//	            -pubs publishers send -size messages to its topic for -warmup
//	            plus -duration, each with at most -inflight PUBLISHes not yet
//	            PUBACKed; reports msg/s PUBACKed and publish-to-PUBACK
//	            latency over the measured window.
//	fill        the same until exactly -msgs messages are queued; reports the
//	            time and rate.
//	drain       resumes the subscriber's session and receives -msgs messages
//	            (PUBACKing them), checking each publisher's sequence numbers;
//	            reports the time from CONNECT to the last one.
//	restart     execs the broker command line given after the flags (after
//	            --), times exec to its "duplex listening on" line, quotes its
//	            "store loaded" log line, drains -msgs messages (0: none) on
//	            -url's path at the address it printed, then stops it with
//	            SIGTERM (it must exit with status 0).
//
// With -protocol mqtt, -qos 0 or 1 sets the QoS of every publication and
// subscription; QoS 1 subscribers PUBACK each delivery and QoS 1 publishers
// count PUBACKs as confirmations for flow control.
//
// It prints exactly one result line on standard output, for example
//
//	stomp throughput 1->1 64B: 187432 msg/s delivered, 187430 msg/s published, p50 0.210 ms, ...
//	mqtt throughput 1->100 64B qos1: 98000 msg/s delivered, 980 msg/s published, ...
//	mqtt durable 16 pubs 64B qos1 inflight 32/pub sync=always: 5200 msg/s, PUBACK p50 3.10 ms, ...
//
// followed by ", FAIL: why" when the run does not count (a subscriber was
// disconnected, deliveries were lost, ...), in which case it exits 1.
// Diagnostics go to standard error. Every wait has a deadline and the whole
// run is bounded by -deadline.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"
)

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "duplex-bench:", err)
		os.Exit(2)
	}
	raiseOpenFiles()
	r := &result{name: resultName(cfg)}

	var once sync.Once
	emit := func(code int) {
		once.Do(func() {
			fmt.Println(r)
			os.Exit(code)
		})
	}
	watchdog := time.AfterFunc(cfg.deadline, func() {
		late := &result{name: r.name}
		late.fail("gave up after -deadline %s", cfg.deadline)
		once.Do(func() {
			fmt.Println(late)
			os.Exit(3)
		})
	})
	defer watchdog.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), cfg.deadline)
	defer cancel()
	switch cfg.scenario {
	case scenarioIdle:
		runIdle(ctx, cfg, r)
	case scenarioProbe:
		runProbe(ctx, cfg, r)
	case scenarioAdminAPI:
		runAdminAPI(ctx, cfg, r)
	case scenarioDurable:
		runDurable(ctx, cfg, r)
	case scenarioFill:
		runFill(ctx, cfg, r)
	case scenarioDrain:
		runDrain(ctx, cfg, r)
	case scenarioRestart:
		runRestart(ctx, cfg, r)
	default:
		runThroughput(ctx, cfg, r)
	}
	if len(r.fails) > 0 {
		emit(1)
	}
	emit(0)
}

// resultName is the start of the result line, naming the protocol, the
// scenario and its shape: "stomp throughput 1->100 1KiB", "mqtt latency 1->1
// 64B qos1 @5000/s", "stomp idle 10000 conns", "mqtt probe", "mqtt durable
// 16 pubs 64B qos1 inflight 32/pub", followed by -label if any.
func resultName(cfg *config) string {
	name := scenarioName(cfg)
	if cfg.label != "" {
		name += " " + cfg.label
	}
	return name
}

// scenarioName is resultName without the label.
func scenarioName(cfg *config) string {
	qos := ""
	if cfg.protocol == protoMQTT {
		qos = fmt.Sprintf(" qos%d", cfg.qos)
	}
	switch cfg.scenario {
	case scenarioIdle:
		return fmt.Sprintf("%s idle %d conns", cfg.protocol, cfg.conns)
	case scenarioProbe:
		return fmt.Sprintf("%s probe %s", cfg.protocol, cfg.url)
	case scenarioAdminAPI:
		mix := "stomp+mqtt"
		if cfg.protocol == protoMQTT {
			mix = "mqtt"
		}
		return fmt.Sprintf("adminapi %d %s conns %d offline", cfg.conns, mix, cfg.offline)
	case scenarioLatency:
		return fmt.Sprintf("%s latency %d->%d %s%s @%.0f/s", cfg.protocol, cfg.pubs, cfg.subs, fmtSize(cfg.size), qos, cfg.rate)
	case scenarioDurable:
		return fmt.Sprintf("%s durable %d %s %s%s inflight %d/pub", cfg.protocol, cfg.pubs, plural(cfg.pubs, "pub"), fmtSize(cfg.size), qos, cfg.inflight)
	case scenarioFill:
		return fmt.Sprintf("%s fill %d msgs %d %s %s%s inflight %d/pub", cfg.protocol, cfg.msgs, cfg.pubs, plural(cfg.pubs, "pub"), fmtSize(cfg.size), qos, cfg.inflight)
	case scenarioDrain:
		return fmt.Sprintf("%s drain %d msgs%s", cfg.protocol, cfg.msgs, qos)
	case scenarioRestart:
		return fmt.Sprintf("%s restart %d msgs%s", cfg.protocol, cfg.msgs, qos)
	}
	name := fmt.Sprintf("%s throughput %d->%d %s%s", cfg.protocol, cfg.pubs, cfg.subs, fmtSize(cfg.size), qos)
	if cfg.rate > 0 {
		name += fmt.Sprintf(" @%.0f/s", cfg.rate)
	}
	return name
}

// plural returns word, with an s unless n is 1.
func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
