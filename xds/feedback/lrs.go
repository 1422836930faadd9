package feedback

import (
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	lrsv3 "github.com/envoyproxy/go-control-plane/envoy/service/load_stats/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// DefaultReportInterval is how often dynup asks nodes to report load: a server failing for the fleet is
// taken out within about one interval.
const DefaultReportInterval = 2 * time.Second

// sendAllClustersFeature is the client feature of nodes that understand send_all_clusters.
const sendAllClustersFeature = "envoy.lrs.supports_send_all_clusters"

// LRS is a Load Reporting Service server. It asks every node for per-endpoint stats of all its clusters at
// a fixed interval, and counts each endpoint's errors and successes in the tracker. Envoy reports errors
// for 5xx answers and for connection failures, resets and timeouts.
type LRS struct {
	lrsv3.UnimplementedLoadReportingServiceServer
	tracker  *Tracker
	store    Store
	interval time.Duration
	log      *slog.Logger

	mu    sync.Mutex
	nodes map[string]NodeReport // by reporter name
	open  int
}

// NodeReport is what the LRS server knows of one connected reporting node.
type NodeReport struct {
	Streams    int       `json:"streams"`
	LastReport time.Time `json:"last_report,omitzero"`
	Reports    uint64    `json:"reports"`
	Errors     uint64    `json:"errors"`
}

// NewLRS returns an LRS server feeding tracker; the store lists clusters for nodes that cannot be told
// "all clusters". interval ≤ 0 means DefaultReportInterval.
func NewLRS(tracker *Tracker, store Store, interval time.Duration, log *slog.Logger) *LRS {
	if interval <= 0 {
		interval = DefaultReportInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &LRS{tracker: tracker, store: store, interval: interval, log: log, nodes: map[string]NodeReport{}}
}

// Register adds the service to a gRPC server (dynup's xDS server: nodes report where they get config).
func (s *LRS) Register(g *grpc.Server) { lrsv3.RegisterLoadReportingServiceServer(g, s) }

// Interval is the report interval nodes are asked for.
func (s *LRS) Interval() time.Duration { return s.interval }

// StreamLoadStats serves one node: the first request names it, the answer says what to report and how
// often, every later request is a report.
func (s *LRS) StreamLoadStats(stream grpc.BidiStreamingServer[lrsv3.LoadStatsRequest, lrsv3.LoadStatsResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	node := first.GetNode()
	if node.GetId() == "" {
		return status.Error(codes.InvalidArgument, "the first load report must carry the node with its id")
	}
	reporter := "lrs:" + node.GetId()
	s.opened(reporter)
	defer s.closed(reporter)

	sendAll := slices.Contains(node.GetClientFeatures(), sendAllClustersFeature)
	var names []string
	if !sendAll {
		// The list of clusters follows the store: a node that cannot be told "all" is told each new list.
		states, unsubscribe := s.store.Subscribe()
		defer unsubscribe()
		names = (<-states).Names()
		done := make(chan struct{})
		defer close(done)
		if err := stream.Send(s.response(false, names)); err != nil {
			return err
		}
		go func() {
			for {
				select {
				case <-done:
					return
				case st := <-states:
					if next := st.Names(); !slices.Equal(next, names) {
						names = next
						if stream.Send(s.response(false, names)) != nil {
							return
						}
					}
				}
			}
		}()
	} else if err := stream.Send(s.response(true, nil)); err != nil {
		return err
	}

	s.count(reporter, first)
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		s.count(reporter, req)
	}
}

func (s *LRS) response(all bool, names []string) *lrsv3.LoadStatsResponse {
	return &lrsv3.LoadStatsResponse{
		SendAllClusters:           all,
		Clusters:                  names,
		LoadReportingInterval:     durationpb.New(s.interval),
		ReportEndpointGranularity: true,
	}
}

// count hands every endpoint's counts in one report to the tracker. Servers the state does not have (a
// report racing a removal, a cluster dynup does not serve) are skipped.
func (s *LRS) count(reporter string, req *lrsv3.LoadStatsRequest) {
	var errs uint64
	for _, cs := range req.GetClusterStats() {
		for _, loc := range cs.GetUpstreamLocalityStats() {
			for _, ep := range loc.GetUpstreamEndpointStats() {
				sa := ep.GetAddress().GetSocketAddress()
				port, ok := sa.GetPortSpecifier().(*core.SocketAddress_PortValue)
				if sa == nil || !ok || (ep.GetTotalErrorRequests() == 0 && ep.GetTotalSuccessfulRequests() == 0) {
					continue
				}
				errs += ep.GetTotalErrorRequests()
				_, err := s.tracker.Report(Report{Upstream: cs.GetClusterName(), Host: sa.GetAddress(), Port: int(port.PortValue),
					Reporter: reporter, Failures: ep.GetTotalErrorRequests(), Successes: ep.GetTotalSuccessfulRequests()})
				if err != nil {
					s.log.Debug("load report for an unknown server", "reporter", reporter, "err", err)
				}
			}
		}
	}
	if len(req.GetClusterStats()) == 0 {
		return
	}
	lrsReports.Inc()
	s.mu.Lock()
	n, ok := s.nodes[reporter]
	if !ok {
		s.mu.Unlock()
		return
	}
	n.LastReport = time.Now()
	n.Reports++
	n.Errors += errs
	s.nodes[reporter] = n
	s.mu.Unlock()
}

func (s *LRS) opened(reporter string) {
	lrsStreams.Inc()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open++
	n := s.nodes[reporter]
	n.Streams++
	s.nodes[reporter] = n
}

func (s *LRS) closed(reporter string) {
	lrsStreams.Dec()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open--
	// A node that left is forgotten, so nodes coming and going do not grow the list.
	n := s.nodes[reporter]
	if n.Streams--; n.Streams <= 0 {
		delete(s.nodes, reporter)
		return
	}
	s.nodes[reporter] = n
}

// LRSStatus sums up the load reporting streams.
type LRSStatus struct {
	Streams        int                   `json:"streams"`
	ReportInterval string                `json:"report_interval"`
	Nodes          map[string]NodeReport `json:"nodes"`
}

// Status returns the open streams and what each node reported.
func (s *LRS) Status() LRSStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	nodes := make(map[string]NodeReport, len(s.nodes))
	for k, v := range s.nodes {
		nodes[k] = v
	}
	return LRSStatus{Streams: s.open, ReportInterval: s.interval.String(), Nodes: nodes}
}
