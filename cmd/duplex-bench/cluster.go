package main

import (
	"flag"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Cluster runs (bench/cluster.sh): the subscribers spread over several
// nodes, and the CPU of every node counted.
//
//	-sub-urls    the subscribers' WebSocket URLs, comma-separated:
//	             subscriber j connects to the (j mod n)th (publishers keep
//	             -url)
//	-broker-pids the brokers' process ids, comma-separated: "broker
//	             cpu-us/delivery" is then the sum of their CPU over the
//	             window, per delivery (the first is -broker-pid)
var cluster struct {
	subURLs    []string
	brokerPIDs []int

	once    sync.Once
	dialers []*dialer
}

// addClusterFlags defines -sub-urls and -broker-pids on fs (parseFlags).
func addClusterFlags(fs *flag.FlagSet, c *config) {
	fs.Func("sub-urls", "throughput, latency: the subscribers' WebSocket `URLs`, comma-separated, subscriber j on the (j mod n)th (default -url)", func(s string) error {
		cluster.subURLs = nil
		for _, u := range strings.Split(s, ",") {
			p, err := url.Parse(u)
			if err != nil || p.Scheme != "ws" {
				return fmt.Errorf("%q: want a ws:// URL", u)
			}
			cluster.subURLs = append(cluster.subURLs, u)
		}
		return nil
	})
	fs.Func("broker-pids", "process `ids` of several brokers, comma-separated: broker CPU is their sum (sets -broker-pid to the first)", func(s string) error {
		cluster.brokerPIDs = nil
		for _, f := range strings.Split(s, ",") {
			pid, err := strconv.Atoi(f)
			if err != nil || pid <= 0 {
				return fmt.Errorf("%q: want a process id", f)
			}
			cluster.brokerPIDs = append(cluster.brokerPIDs, pid)
		}
		c.brokerPID = cluster.brokerPIDs[0]
		return nil
	})
}

// dialerFor returns the dialer of connection k (subscribers first, then
// publishers): d, or with -sub-urls subscriber k's node. Their newDialer
// cannot fail: the flag checked the URLs and d's own -source-ips.
func (lr *loadRun) dialerFor(k int, d *dialer) *dialer {
	if len(cluster.subURLs) == 0 || k >= len(lr.subs) {
		return d
	}
	cluster.once.Do(func() {
		for _, u := range cluster.subURLs {
			cfg := *lr.cfg
			cfg.url = u
			sd, err := newDialer(&cfg, false)
			if err != nil {
				panic(err)
			}
			cluster.dialers = append(cluster.dialers, sd)
		}
	})
	return cluster.dialers[k%len(cluster.dialers)]
}

// brokersCPU measures the CPU of every broker of -broker-pids, or of
// -broker-pid alone.
type brokersCPU []cpuMeter

func startBrokersCPU(cfg *config) brokersCPU {
	if len(cluster.brokerPIDs) == 0 {
		return brokersCPU{startCPU(cfg.brokerPID)}
	}
	m := make(brokersCPU, len(cluster.brokerPIDs))
	for i, pid := range cluster.brokerPIDs {
		m[i] = startCPU(pid)
	}
	return m
}

// used is the CPU all of them used since startBrokersCPU; false when any
// is unknown.
func (m brokersCPU) used() (time.Duration, bool) {
	var sum time.Duration
	for _, c := range m {
		t, ok := c.used()
		if !ok {
			return 0, false
		}
		sum += t
	}
	return sum, true
}
