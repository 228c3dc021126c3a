package web

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/duplexmq/duplex/broker"
)

// maxSessionID bounds a {id} path value: an MQTT client id is at most
// 65535 bytes, but the request line is bounded well below that
// (Config.MaxHeaderBytes), and real ids are short.
const maxSessionID = maxV1Cursor

// clientSorts are the ?sort= keys of GET /api/v1/clients.
var clientSorts = []string{
	broker.SortByID, broker.SortByConnectedAt, broker.SortByMsgsIn, broker.SortByMsgsOut,
	broker.SortByQueued, broker.SortByBytesIn, broker.SortByBytesOut,
}

// v1Clients answers GET /api/v1/clients?limit&cursor&q&sort&online:
// connected sessions and persistent ones kept offline.
func (s *Server) v1Clients(w http.ResponseWriter, r *http.Request) {
	s.clientList(w, r, false)
}

// v1Sessions answers GET /api/v1/sessions?limit&cursor&q&online: the
// persistent sessions, connected or offline.
func (s *Server) v1Sessions(w http.ResponseWriter, r *http.Request) {
	s.clientList(w, r, true)
}

func (s *Server) clientList(w http.ResponseWriter, r *http.Request, persistentOnly bool) {
	p, ok := parseList(w, r)
	if !ok {
		return
	}
	online, ok := parseOnline(w, r)
	if !ok {
		return
	}
	sortKey := r.URL.Query().Get("sort")
	if k := strings.TrimPrefix(sortKey, "-"); sortKey != "" && !slices.Contains(clientSorts, k) {
		apiError(w, http.StatusBadRequest, "sort must be one of "+strings.Join(clientSorts, ", ")+
			" (a \"-\" prefix sorts descending)")
		return
	}
	infos, next, err := s.router.ClientPage(p.cursor, p.limit, p.q, sortKey, online, persistentOnly)
	if err != nil {
		// A cursor that does not fit the sort order, or a sort key the
		// router does not know.
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	items := make([]Client, len(infos))
	for i := range infos {
		items[i] = clientOf(&infos[i])
	}
	apiJSON(w, page(items, next))
}

// v1Client answers GET /api/v1/clients/{id}: one session (connected or
// kept offline) and its subscriptions; 404 when unknown.
func (s *Server) v1Client(w http.ResponseWriter, r *http.Request) {
	id, ok := pathValue(w, r, "id", maxSessionID)
	if !ok {
		return
	}
	info, subs, found := s.router.Client(broker.SessionID(id))
	if !found {
		apiError(w, http.StatusNotFound, "no such session: "+id)
		return
	}
	d := ClientDetail{Client: clientOf(&info), Subscriptions: make([]Subscription, len(subs))}
	for i := range subs {
		d.Subscriptions[i] = subscriptionOf(&subs[i])
	}
	apiJSON(w, d)
}

// v1Disconnect answers POST /api/v1/clients/{id}/disconnect: the
// connection gets its protocol's notice (STOMP ERROR, MQTT 5 DISCONNECT
// 0x98) and closes; a persistent session stays, offline. A session
// kept offline is 409, an unknown one 404.
func (s *Server) v1Disconnect(w http.ResponseWriter, r *http.Request) {
	id, ok := pathValue(w, r, "id", maxSessionID)
	if !ok {
		return
	}
	if err := s.router.Disconnect(broker.SessionID(id)); err != nil {
		if errors.Is(err, broker.ErrNoSuchSession) {
			if _, _, kept := s.router.Client(broker.SessionID(id)); kept {
				apiError(w, http.StatusConflict, "session "+id+" is not connected")
				return
			}
		}
		s.actionError(w, r, err)
		return
	}
	s.cfg.Log.Info("web: admin disconnected a session", "session", id, "remote", r.RemoteAddr)
	apiOK(w)
}

// v1DeleteSession answers DELETE /api/v1/sessions/{id}: the session and
// everything kept for it go, after a disconnection if it is connected.
func (s *Server) v1DeleteSession(w http.ResponseWriter, r *http.Request) {
	id, ok := pathValue(w, r, "id", maxSessionID)
	if !ok {
		return
	}
	if err := s.router.DeleteSession(broker.SessionID(id)); err != nil {
		s.actionError(w, r, err)
		return
	}
	s.cfg.Log.Info("web: admin deleted a session", "session", id, "remote", r.RemoteAddr)
	apiOK(w)
}

// v1Subscriptions answers GET /api/v1/subscriptions?limit&cursor&q.
func (s *Server) v1Subscriptions(w http.ResponseWriter, r *http.Request) {
	p, ok := parseList(w, r)
	if !ok {
		return
	}
	infos, next := s.router.SubscriptionPage(p.cursor, p.limit, p.q)
	items := make([]Subscription, len(infos))
	for i := range infos {
		items[i] = subscriptionOf(&infos[i])
	}
	apiJSON(w, page(items, next))
}

// clientOf converts the router's copy into the API's Client.
func clientOf(c *broker.ClientInfo) Client {
	out := Client{
		ID:               c.ID,
		ClientID:         c.ClientID,
		Protocol:         c.Protocol,
		Version:          c.Version,
		Transport:        c.Transport,
		User:             c.User,
		RemoteAddr:       c.RemoteAddr,
		Online:           c.Online,
		ConnectedAt:      rfc3339(c.ConnectedAt),
		KeepAliveSeconds: c.KeepAlive.Seconds(),
		Subscriptions:    c.Subs,
		Inflight:         c.Inflight,
		Queued:           c.Queued,
		QueuedBytes:      c.QueuedBytes,
		MsgsIn:           c.MsgsIn,
		MsgsOut:          c.MsgsOut,
		BytesIn:          c.BytesIn,
		BytesOut:         c.BytesOut,
		Slow:             c.Slow,
		Persistent:       c.Persistent,
		ExpirySeconds:    c.Expiry.Seconds(),
		ExpiresAt:        rfc3339(c.ExpiresAt),
		Backlog:          c.Backlog,
	}
	if out.Slow == "" {
		out.Slow = broker.SlowOK
	}
	if out.ClientID == "" {
		out.ClientID = c.ID
	}
	return out
}

// subscriptionOf converts the router's copy into the API's Subscription.
func subscriptionOf(s *broker.SubscriptionInfo) Subscription {
	return Subscription{
		SessionID: s.SessionID, ClientID: s.ClientID, User: s.User, Key: s.Key, Kind: s.Kind,
		Filter: s.Filter, Queue: s.Queue, Group: s.Group, QoS: int(s.QoS), Ack: s.Ack,
		NoLocal: s.NoLocal, SubID: s.SubID,
	}
}
