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

	// Durable messaging (durable, fill, drain, restart).
	inflight     int
	msgs         int
	clientID     string
	label        string
	brokerLog    string
	startTimeout time.Duration
	brokerCmd    []string // restart: the broker's command line

	// adminapi.
	mqttURL     string
	adminURL    string
	offline     int
	offlineTime time.Duration
	requests    int
	exec        string
}

// login is the user name and password every connection presents (STOMP
// login/passcode, MQTT user name/password); empty: anonymous. main sets it
// once from -user and -password, before any connection.
var login struct{ user, password string }

// Scenarios.
const (
	scenarioThroughput = "throughput"
	scenarioLatency    = "latency"
	scenarioIdle       = "idle"
	scenarioProbe      = "probe"
	scenarioDurable    = "durable"
	scenarioFill       = "fill"
	scenarioDrain      = "drain"
	scenarioRestart    = "restart"
	scenarioAdminAPI   = "adminapi"
)

// durableTopic is the topic of the durable scenarios.
const durableTopic = "bench/durable"

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
	fs.StringVar(&c.scenario, "scenario", scenarioThroughput, "throughput, latency, idle, probe (one connection and subscription: does the broker speak -protocol?), adminapi (management API latency with many clients), or, MQTT QoS 1 only, durable, fill, drain, restart (see the package doc)")
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
	fs.IntVar(&c.inflight, "inflight", 32, "durable, fill: most QoS 1 PUBLISHes each publisher has sent and not yet seen PUBACKed (1..65535)")
	fs.IntVar(&c.msgs, "msgs", 0, "fill: messages to queue for the persistent session; drain, restart: messages it should receive (restart: 0 skips the drain)")
	fs.StringVar(&c.clientID, "client-id", "bench-durable-sub", "durable, fill, drain, restart: client identifier of the persistent subscriber")
	fs.StringVar(&login.user, "user", "", "log in as this user (STOMP login, MQTT user name); empty: anonymous")
	fs.StringVar(&login.password, "password", "", "password for -user (STOMP passcode, MQTT password)")
	fs.StringVar(&c.label, "label", "", "text appended to the result line's name, e.g. the broker's sync policy \"sync=always\"")
	fs.StringVar(&c.brokerLog, "broker-log", "", "restart: append the broker's standard output and error to this `file` (empty: not kept)")
	fs.DurationVar(&c.startTimeout, "start-timeout", 5*time.Minute, "restart: longest wait for the broker's listening line")
	fs.StringVar(&c.mqttURL, "mqtt-url", "", "adminapi: the MQTT connections' WebSocket `URL` (default -url)")
	fs.StringVar(&c.adminURL, "admin-url", "", "adminapi: the management API's base `URL` (default http:// and -url's host)")
	fs.IntVar(&c.offline, "offline", 0, "adminapi: persistent MQTT sessions to leave offline before measuring")
	fs.DurationVar(&c.offlineTime, "offline-time", 2*time.Minute, "adminapi: stop making -offline sessions after this long (the line says how many were made)")
	fs.IntVar(&c.requests, "requests", 300, "adminapi: timed requests of the overview, and of the clients list (its kinds in turn)")
	fs.StringVar(&c.exec, "exec", "", "adminapi: shell `command` to run after the measurements, while the connections are still open (its output goes to standard error)")
	addClusterFlags(fs, c) // cluster.go: -sub-urls, -broker-pids
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: duplex-bench [flags]\n       duplex-bench -protocol mqtt -scenario restart [flags] -- BROKER-COMMAND [ARGS...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if c.scenario == scenarioRestart {
		c.brokerCmd = fs.Args()
	} else if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return c, c.check()
}

// durable tells whether the scenario is one of the durable-messaging ones.
func (c *config) durable() bool {
	switch c.scenario {
	case scenarioDurable, scenarioFill, scenarioDrain, scenarioRestart:
		return true
	}
	return false
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
	case scenarioAdminAPI:
		if c.conns < 1 || c.offline < 0 || c.requests < 1 {
			return fmt.Errorf("-conns %d -offline %d -requests %d: want at least 1, 0 and 1", c.conns, c.offline, c.requests)
		}
		if c.mqttURL == "" {
			c.mqttURL = c.url
		}
	case scenarioDurable, scenarioFill, scenarioDrain, scenarioRestart:
		if err := c.checkDurable(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("-scenario %q: want throughput, latency, idle, probe, adminapi, durable, fill, drain or restart", c.scenario)
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
		switch c.scenario {
		case scenarioIdle:
			c.deadline += time.Duration(c.conns) * time.Millisecond
		case scenarioAdminAPI:
			c.deadline += time.Duration(c.conns)*time.Millisecond + min(time.Duration(c.offline)*time.Millisecond, c.offlineTime) +
				time.Duration(c.requests)*c.timeout/10
			if c.exec != "" {
				c.deadline += 5 * time.Minute
			}
		case scenarioFill, scenarioDrain, scenarioRestart:
			// No fixed duration: allow 5000 messages/s at least.
			c.deadline = 6*c.timeout + 2*time.Minute + time.Duration(c.msgs)*200*time.Microsecond
			if c.scenario == scenarioRestart {
				c.deadline += c.startTimeout
			}
		}
	}
	return nil
}

// checkDurable checks the flags of the durable-messaging scenarios, which
// speak MQTT at QoS 1 only: -qos is set to 1.
func (c *config) checkDurable() error {
	if c.protocol != protoMQTT {
		return fmt.Errorf("-scenario %s: needs -protocol mqtt", c.scenario)
	}
	c.qos = 1
	if c.clientID == "" || len(c.clientID) > 23 {
		return fmt.Errorf("-client-id %q: want 1..23 characters", c.clientID)
	}
	switch c.scenario {
	case scenarioDurable, scenarioFill:
		if c.pubs < 1 || c.pubs > 1000 {
			return fmt.Errorf("-pubs %d: want 1..1000", c.pubs)
		}
		if c.size < minBody || c.size > 1<<22 {
			return fmt.Errorf("-size %d: want %d..%d", c.size, minBody, 1<<22)
		}
		if c.inflight < 1 || c.inflight > 65535 {
			return fmt.Errorf("-inflight %d: want 1..65535 (MQTT packet identifiers)", c.inflight)
		}
	}
	switch c.scenario {
	case scenarioFill, scenarioDrain:
		if c.msgs < 1 {
			return fmt.Errorf("-msgs %d: want at least 1", c.msgs)
		}
	case scenarioRestart:
		if c.msgs < 0 {
			return fmt.Errorf("-msgs %d: want 0 or more", c.msgs)
		}
		if len(c.brokerCmd) == 0 {
			return fmt.Errorf("-scenario restart: the broker's command line must follow the flags (after --)")
		}
		if c.startTimeout <= 0 {
			return fmt.Errorf("-start-timeout must be positive")
		}
	}
	return nil
}
