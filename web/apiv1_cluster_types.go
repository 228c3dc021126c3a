package web

// ClusterView is GET /api/v1/cluster.
type ClusterView struct {
	Cluster bool          `json:"cluster"` // false: a single node, no [cluster]
	Self    string        `json:"self"`    // this node's id
	Nodes   []ClusterNode `json:"nodes"`   // this node first, then the others by id
}

// ClusterNode is one node of the cluster view. A node that did not
// answer (State down or stopped) has only ID, State and LastSeen.
type ClusterNode struct {
	ID            string      `json:"id"`
	State         string      `json:"state"` // up, down, stopped
	Self          bool        `json:"self,omitempty"`
	Addresses     []string    `json:"addresses"` // the node's listeners (WebSocket/HTTP, TCP)
	Version       string      `json:"version,omitempty"`
	StartedAt     string      `json:"started_at,omitempty"`
	UptimeSeconds float64     `json:"uptime_seconds"`
	Ready         bool        `json:"ready"`               // its /readyz answers 200
	NotReady      string      `json:"not_ready,omitempty"` // why not
	Joined        bool        `json:"joined"`              // connected to NATS and routed to a peer
	RoutedPeers   int         `json:"routed_peers"`        // other nodes its embedded NATS has a route to
	Routes        int         `json:"routes"`              // embedded NATS route connections (pooled: several per peer)
	Connections   int         `json:"connections"`
	ByProtocol    []ConnGroup `json:"by_protocol"`
	Sessions      int         `json:"sessions"`
	Subscriptions int         `json:"subscriptions"`
	Rates         Rates       `json:"rates"`     // per second, the node's latest sample
	LastSeen      string      `json:"last_seen"` // its latest answer
}

// ClusterClient is one item of GET /api/v1/cluster/clients.
type ClusterClient struct {
	ID          string `json:"id"`
	ClientID    string `json:"client_id"`
	Node        string `json:"node"` // the node that holds the session
	Protocol    string `json:"protocol"`
	Version     string `json:"version"`
	Transport   string `json:"transport,omitempty"`
	User        string `json:"user,omitempty"`
	RemoteAddr  string `json:"remote_addr,omitempty"`
	Online      bool   `json:"online"`
	Persistent  bool   `json:"persistent"`
	ConnectedAt string `json:"connected_at,omitempty"`
}

// ClusterClientPage is the body of GET /api/v1/cluster/clients: a Page
// plus the nodes that did not answer in time.
type ClusterClientPage struct {
	Items      []ClusterClient `json:"items"`
	NextCursor string          `json:"next_cursor,omitempty"`
	Unanswered []string        `json:"unanswered"`
}
