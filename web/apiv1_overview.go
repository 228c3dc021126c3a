package web

import (
	"net/http"
	"sort"
	"time"

	"github.com/duplexmq/duplex/store"
	"github.com/duplexmq/duplex/subprotocol"
)

// v1Overview answers GET /api/v1/overview: the router's gauges and
// totals, connections by protocol, the latest rates of the history
// sampler, admission control, authentication failures and the store.
// Every source is a copy taken without holding a lock across another.
func (s *Server) v1Overview(w http.ResponseWriter, _ *http.Request) {
	apiJSON(w, s.overview())
}

func (s *Server) overview() Overview {
	st := s.router.Stats()
	ctr := s.router.Counters()
	now := time.Now()
	o := Overview{
		Version:       s.cfg.Version,
		StartedAt:     rfc3339(s.started),
		UptimeSeconds: now.Sub(s.started).Seconds(),
		ByProtocol:    []ConnGroup{},
		Sessions:      st.Sessions,
		Persistent:    st.PersistentSessions,
		Subscriptions: int(st.AllSubscriptions),
		Rates:         s.lastRates(),
		Totals: Totals{
			MsgsIn: ctr.Published, MsgsOut: ctr.Delivered,
			BytesIn: ctr.BytesIn, BytesOut: ctr.BytesOut,
		},
		Drops: Drops{
			SlowConsumer:  ctr.Dropped,
			SlowClosed:    ctr.SlowConsumers,
			NoSubscriber:  ctr.NoSubscriber,
			Quota:         ctr.QuotaRefused,
			Offline:       ctr.OfflineDropped,
			NotAuthorized: ctr.Denied,
		},
		Retained:      st.Retained,
		RetainedBytes: st.RetainedBytes,
		Queues:        st.Queues,
		QueuedMsgs:    st.QueueReady + st.QueueUnacked,
		StoredMsgs:    st.StoredMsgs,
		Store:         storeInfo(s.cfg.Store),
		Admission:     v1Admission(s.AdmissionStats()),
		AuthFailures:  s.authFailures(),
	}
	for _, c := range s.router.ConnCounts() {
		o.Connections += c.N
		o.ByProtocol = append(o.ByProtocol, ConnGroup{Protocol: c.Protocol, Version: c.Version, Transport: c.Transport, Count: c.N})
	}
	sort.Slice(o.ByProtocol, func(i, j int) bool {
		a, b := o.ByProtocol[i], o.ByProtocol[j]
		if a.Protocol != b.Protocol {
			return a.Protocol < b.Protocol
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.Transport < b.Transport
	})
	return o
}

// lastRates are the rates of the history sampler's latest sample.
func (s *Server) lastRates() Rates {
	if s.hist == nil {
		return Rates{}
	}
	l := s.hist.last()
	return Rates{MsgsIn: l.MsgsIn, MsgsOut: l.MsgsOut, BytesIn: l.BytesIn, BytesOut: l.BytesOut, Drops: l.Drops}
}

// authFailures adds up the connections the protocols refused at login.
func (s *Server) authFailures() uint64 {
	var n uint64
	for _, p := range s.reg {
		if sp, ok := p.(interface{ Stats() subprotocol.Stats }); ok {
			n += sp.Stats().AuthFailures
		}
	}
	return n
}

// storeInfo describes st, nil without a store or stats.
func storeInfo(st store.Store) *StoreInfo {
	if st == nil {
		return nil
	}
	ss, ok := store.StatsOf(st)
	if !ok {
		return nil
	}
	info := &StoreInfo{FileSize: ss.FileSize, Commits: ss.Commits, LastCommitSeconds: ss.LastCommit.Seconds()}
	if ss.Commits > 0 {
		info.AvgCommitSeconds = ss.CommitSeconds / float64(ss.Commits)
	}
	if p, ok := st.(interface{ Path() string }); ok {
		info.Path = p.Path()
	}
	return info
}

// v1Admission is AdmissionStats with the API's snake_case names.
func v1Admission(a AdmissionStats) Admission {
	return Admission{
		Connections: a.Connections, MaxConnections: a.MaxConnections, Sockets: a.Sockets, MaxSockets: a.MaxSockets,
		RefusedTotal: a.RefusedTotal, RefusedPerIP: a.RefusedPerIP, RefusedRate: a.RefusedRate,
		RefusedSockets: a.RefusedSockets, TLSHandshakeFailures: a.TLSHandshakeFailures, Sources: a.Sources,
	}
}
