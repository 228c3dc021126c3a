package web

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// hostList is a compiled Host allow-list.
type hostList struct {
	any   bool
	names map[string]bool // normalised: lower case, no brackets, no trailing dot
}

func newHostList(lists ...[]string) hostList {
	h := hostList{names: make(map[string]bool)}
	empty := true
	for _, l := range lists {
		for _, n := range l {
			empty = false
			if n == "*" {
				h.any = true
			}
			h.names[normalHost(hostOf(n))] = true // a port written in the list is ignored too
		}
	}
	h.any = h.any || empty
	return h
}

// normalHost lower-cases a host name and writes an IP address in its
// canonical form, without brackets, port or trailing dot.
func normalHost(h string) string {
	h = strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
	if ip, err := netip.ParseAddr(h); err == nil {
		return ip.Unmap().String()
	}
	return h
}

// hostOf is the host part of a Host header, without the port.
func hostOf(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

func (h hostList) allows(hostport string) bool {
	return h.any || h.names[normalHost(hostOf(hostport))]
}

// front is the first thing every HTTP request meets: the Host allow-list
// (it closes DNS rebinding, since the same-origin check trusts Host; only
// /healthz is exempt), then
// the client address after trusted proxies, which replaces r.RemoteAddr for
// everything downstream (logs, admission, Transport.RemoteAddr).
type front struct {
	s     *Server
	hosts hostList
	next  http.Handler
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// /healthz answers any Host: load balancers probe by IP address, and
	// "ok" tells a rebinding page nothing.
	if !f.hosts.allows(r.Host) && r.URL.Path != "/healthz" {
		host := r.Host
		if len(host) > 100 {
			host = host[:100] + "..."
		}
		f.s.logRequest(r, "web: host refused", "host", host)
		http.Error(w, fmt.Sprintf("Duplex: Host %q is not allowed; set web.allowed_hosts", host), http.StatusForbidden)
		return
	}
	if ap := f.s.clientAddr(r); ap.IsValid() {
		r.RemoteAddr = ap.String()
	}
	f.next.ServeHTTP(w, r)
}
