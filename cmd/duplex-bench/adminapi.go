package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The adminapi scenario: how fast the management API answers with many
// clients. It opens -conns idle connections (half STOMP on -url, half MQTT
// on -mqtt-url, each with one subscription; connection k publishes k%5
// messages, so that the clients' message counts differ), optionally
// leaves -offline persistent MQTT sessions offline (clean session 0, one
// subscription each, then DISCONNECT), and then times GETs one at a time
// over one keep-alive HTTP connection: -requests of the overview, -requests
// of the clients list (its four kinds in turn) and -requests/4 of the
// sessions list:
//
//	clients         /api/v1/clients?limit=100 (the first page)
//	clients-next    later pages, following next_cursor from the first
//	clients-q       ?limit=100&q=99 (a substring a few per cent of ids contain)
//	clients-sort    ?limit=100&sort=-msgs_in
//	sessions        /api/v1/sessions?limit=100 (with -offline only)
//	overview        /api/v1/overview
//
// The idle connections send a heart-beat or PINGREQ every 20 s meanwhile.
// A broker without /api/v1 is asked the older /api/sessions (same paging
// parameters; no sort) and /api/stats instead, and the line says so.

// adminKind is one timed request kind.
type adminKind struct {
	name string
	path string // path and query; "" for clients-next (cursor walk)
	h    histogram
	errs int
}

// adminPage is the part of a list answer the scenario reads: the items,
// counted, and the next cursor. /api/v1 lists are {"items":[...]};
// /api/sessions is {"sessions":[...]}.
type adminPage struct {
	Items      []json.RawMessage `json:"items"`
	Sessions   []json.RawMessage `json:"sessions"`
	NextCursor string            `json:"next_cursor"`
}

func (p *adminPage) len() int { return len(p.Items) + len(p.Sessions) }

// adminRequestLimit is the page size the scenario asks for.
const adminRequestLimit = 100

func runAdminAPI(ctx context.Context, cfg *config, r *result) {
	need := uint64(cfg.conns) + 64 + 256
	if lim := raiseOpenFiles(); lim > 0 && need > lim {
		r.fail("-conns %d needs more than this process's open-files limit %d", cfg.conns, lim)
		return
	}
	base, err := adminBase(cfg)
	if err != nil {
		r.fail("%v", err)
		return
	}
	clients, err := openAdminClients(ctx, cfg)
	stopKeepalive := keepIdleAlive(cfg, clients)
	defer func() {
		stopKeepalive()
		closeIdle(cfg, clients)
	}()
	if err != nil {
		r.fail("%v", err)
		return
	}
	offline := 0
	if cfg.offline > 0 {
		offline, err = leaveOffline(ctx, cfg)
		if offline < cfg.offline {
			r.name = strings.Replace(r.name, fmt.Sprintf(" %d offline", cfg.offline),
				fmt.Sprintf(" %d offline (-offline %d cut at -offline-time %s)", offline, cfg.offline, cfg.offlineTime), 1)
		}
		if err != nil {
			r.fail("%v", err)
			return
		}
	}

	hc := &http.Client{Timeout: cfg.timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	legacy := false
	if code, _, err := adminGet(ctx, hc, base+"/api/v1/clients?limit=1"); err != nil {
		r.fail("GET /api/v1/clients: %v", err)
		return
	} else if code == http.StatusNotFound {
		legacy = true
	} else if code != http.StatusOK {
		r.fail("GET /api/v1/clients?limit=1: HTTP %d", code)
		return
	}
	lim := fmt.Sprint("?limit=", adminRequestLimit)
	var kinds []*adminKind
	if legacy {
		kinds = []*adminKind{
			{name: "sessions(legacy)", path: "/api/sessions" + lim},
			{name: "sessions-next", path: ""},
			{name: "sessions-q", path: "/api/sessions" + lim + "&q=99"},
			{name: "stats(legacy)", path: "/api/stats"},
		}
	} else {
		kinds = []*adminKind{
			{name: "clients", path: "/api/v1/clients" + lim},
			{name: "clients-next", path: ""},
			{name: "clients-q", path: "/api/v1/clients" + lim + "&q=99"},
			{name: "clients-sort", path: "/api/v1/clients" + lim + "&sort=-msgs_in"},
		}
		if offline > 0 {
			kinds = append(kinds, &adminKind{name: "sessions", path: "/api/v1/sessions" + lim})
		}
		kinds = append(kinds, &adminKind{name: "overview", path: "/api/v1/overview"})
	}
	first := kinds[0].path

	// One warm-up round, unmeasured; then the kinds interleaved, so that a
	// pause of the broker (a GC) does not land on one kind only.
	for _, k := range kinds {
		if k.path != "" {
			if _, _, err := adminGet(ctx, hc, base+k.path); err != nil {
				r.fail("warm-up GET %s: %v", k.path, err)
				return
			}
		}
	}
	// Each round times the overview and one of the kinds before it in
	// turn: -requests of the overview, -requests of the clients kinds
	// together, and -requests/4 of the sessions.
	var all histogram // the clients kinds together
	nClients := 4
	if legacy {
		nClients = 3
	}
	cursor := ""
	pages := 0
	for i := 0; i < cfg.requests; i++ {
		for j, k := range kinds {
			if j < nClients && j != i%nClients || j == nClients && len(kinds) > nClients+1 && i%nClients != 0 {
				continue
			}
			if ctx.Err() != nil {
				r.fail("%v", ctx.Err())
				return
			}
			path := k.path
			if path == "" { // the cursor walk: the page after the last
				if cursor == "" {
					// (Re)start from the first page, unmeasured.
					_, body, err := adminGet(ctx, hc, base+first)
					var p adminPage
					if err == nil {
						err = json.Unmarshal(body, &p)
					}
					if err != nil || p.NextCursor == "" {
						r.fail("%s: no next_cursor on the first page (%v)", k.name, err)
						return
					}
					cursor = p.NextCursor
				}
				path = first + "&cursor=" + url.QueryEscape(cursor)
			}
			began := time.Now()
			code, body, err := adminGet(ctx, hc, base+path)
			took := int64(time.Since(began))
			k.h.record(took)
			if j < nClients {
				all.record(took)
			}
			if err != nil || code != http.StatusOK {
				k.errs++
				if k.errs == 1 {
					fmt.Fprintf(os.Stderr, "duplex-bench: GET %s: HTTP %d %v %.200s\n", path, code, err, body)
				}
				continue
			}
			if strings.HasPrefix(k.name, "overview") || strings.HasPrefix(k.name, "stats") {
				continue
			}
			var p adminPage
			if err := json.Unmarshal(body, &p); err != nil {
				k.errs++
				continue
			}
			if p.len() > adminRequestLimit {
				r.fail("%s: %d items, more than limit %d", k.name, p.len(), adminRequestLimit)
			}
			if k.path == "" {
				cursor = p.NextCursor
				pages++
				if pages%20 == 0 {
					cursor = "" // back to the start: pages 2..21
				}
			}
		}
	}
	if legacy {
		r.add("legacy API (no /api/v1)")
	}
	if cfg.exec != "" {
		cmd := exec.CommandContext(ctx, "sh", "-c", cfg.exec)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			r.fail("-exec: %v", err)
		}
	}
	quantiles := func(h *histogram) string {
		return fmt.Sprintf("p50 %s p90 %s p99 %s max %s", fmtMs(h.quantile(0.5)), fmtMs(h.quantile(0.9)), fmtMs(h.quantile(0.99)), fmtMs(h.quantile(1)))
	}
	r.add("%s all %d %s", kinds[0].name, all.n, quantiles(&all))
	for _, k := range kinds {
		r.add("%s %d %s", k.name, k.h.n, quantiles(&k.h))
		if k.errs > 0 {
			r.fail("%s: %d of %d requests failed", k.name, k.errs, k.h.n)
		}
	}
}

// adminBase is the API's base URL: -admin-url, or http:// and -url's host.
func adminBase(cfg *config) (string, error) {
	if cfg.adminURL != "" {
		return strings.TrimSuffix(cfg.adminURL, "/"), nil
	}
	u, err := url.Parse(cfg.url)
	if err != nil {
		return "", err
	}
	return "http://" + u.Host, nil
}

// adminGet fetches u and returns the status and body.
func adminGet(ctx context.Context, hc *http.Client, u string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return resp.StatusCode, body, err
}

// openAdminClients opens the idle connections: with -protocol stomp (the
// default) the even ones STOMP and the odd ones MQTT, with -protocol mqtt
// all MQTT. Each subscribes and publishes k%5 messages to a topic nobody
// reads.
func openAdminClients(ctx context.Context, cfg *config) ([]conn, error) {
	stompCfg, mqttCfg := *cfg, *cfg
	stompCfg.protocol, mqttCfg.protocol = protoSTOMP, protoMQTT
	mqttCfg.url = cfg.mqttURL
	mqttCfg.qos = 0
	ds, err := newDialer(&stompCfg, true)
	if err != nil {
		return nil, err
	}
	dm, err := newDialer(&mqttCfg, true)
	if err != nil {
		return nil, err
	}
	clients := make([]conn, cfg.conns)
	body := make([]byte, minBody)
	began := time.Now()
	err = parallel(cfg.conns, 32, func(k int) error {
		d, proto := dm, protoMQTT
		if cfg.protocol == protoSTOMP && k%2 == 0 {
			d, proto = ds, protoSTOMP
		}
		c, err := d.dial(ctx)
		if err != nil {
			return fmt.Errorf("connection %d (%s): %w", k, proto, err)
		}
		clients[k] = c
		deadline := time.Now().Add(cfg.timeout)
		if err := c.subscribe(k, topicName(proto, "adminapi", k), deadline); err != nil {
			return fmt.Errorf("connection %d (%s): %w", k, proto, err)
		}
		c.setWriteDeadline(deadline)
		c.preparePublish(topicName(proto, "adminapi-none", k), len(body))
		for i := range k % 5 {
			if err := c.publish(uint64(i+1), body, false); err != nil {
				return fmt.Errorf("connection %d (%s): publish: %w", k, proto, err)
			}
		}
		return nil
	})
	opened := 0
	for _, c := range clients {
		if c != nil {
			opened++
		}
	}
	fmt.Fprintf(os.Stderr, "duplex-bench: adminapi: %d connections open in %s\n", opened, time.Since(began).Round(time.Millisecond))
	if err != nil {
		return clients, fmt.Errorf("opened %d of %d: %w", opened, cfg.conns, err)
	}
	return clients, nil
}

// errOfflineTime stops leaveOffline at -offline-time.
var errOfflineTime = errors.New("-offline-time reached")

// leaveOffline creates cfg.offline persistent MQTT sessions (clean session
// 0, one subscription each) and disconnects them, so that the broker keeps
// them offline. It stops at -offline-time and returns how many it made.
func leaveOffline(ctx context.Context, cfg *config) (int, error) {
	mqttCfg := *cfg
	mqttCfg.protocol, mqttCfg.url, mqttCfg.qos = protoMQTT, cfg.mqttURL, 1
	d, err := newDialer(&mqttCfg, true)
	if err != nil {
		return 0, err
	}
	began := time.Now()
	var done atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				fmt.Fprintf(os.Stderr, "duplex-bench: adminapi: %d offline sessions after %s\n", done.Load(), time.Since(began).Round(time.Second))
			}
		}
	}()
	prefix := fmt.Sprintf("dxo%d-", os.Getpid())
	err = parallel(cfg.offline, 64, func(k int) error {
		if time.Since(began) > cfg.offlineTime {
			return errOfflineTime
		}
		c, _, err := d.dialSession(ctx, prefix+fmt.Sprint(k), false)
		if err != nil {
			return fmt.Errorf("offline session %d: %w", k, err)
		}
		deadline := time.Now().Add(cfg.timeout)
		if err := c.subscribe(k, topicName(protoMQTT, "adminapi-off", k), deadline); err != nil {
			c.close()
			return fmt.Errorf("offline session %d: %w", k, err)
		}
		if err := c.bye(deadline); err != nil && !errors.Is(err, errNotConfirmed) {
			return fmt.Errorf("offline session %d: %w", k, err)
		}
		done.Add(1)
		return nil
	})
	fmt.Fprintf(os.Stderr, "duplex-bench: adminapi: %d offline sessions in %s\n", done.Load(), time.Since(began).Round(time.Millisecond))
	if errors.Is(err, errOfflineTime) {
		err = nil
	}
	return int(done.Load()), err
}

// keepIdleAlive sends every idle connection a STOMP heart-beat or an MQTT
// PINGREQ every 20 s (they read nothing, so they answer no WebSocket
// ping, and the broker would close them after its idle timeout or 1.5 ×
// the MQTT keep-alive). The PINGRESPs wait unread. Call the returned stop
// before closeIdle.
func keepIdleAlive(cfg *config, clients []conn) (stop func()) {
	done := make(chan struct{})
	ended := make(chan struct{})
	eol := []byte{'\n'}
	pingreq := []byte{0xC0, 0} // PINGREQ
	go func() {
		defer close(ended)
		t := time.NewTicker(20 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			deadline := time.Now().Add(cfg.timeout)
			parallel(len(clients), 8, func(k int) error {
				switch c := clients[k].(type) {
				case *client:
					c.ws.SetWriteDeadline(deadline)
					_ = c.ws.WriteMessage(websocket.TextMessage, eol)
				case *mqttClient:
					c.wmu.Lock()
					c.ws.SetWriteDeadline(deadline)
					_ = c.ws.WriteMessage(websocket.BinaryMessage, pingreq)
					c.wmu.Unlock()
				}
				return nil
			})
		}
	}()
	return func() {
		close(done)
		<-ended
	}
}

// closeIdle says goodbye to the idle connections.
func closeIdle(cfg *config, clients []conn) {
	parallel(len(clients), 32, func(k int) error {
		if c := clients[k]; c != nil {
			if err := c.bye(time.Now().Add(cfg.timeout)); err != nil {
				c.close()
			}
		}
		return nil
	})
}
