package serve

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/delta/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"

	"github.com/dynup/dynup/xds/groupcache"
	"github.com/dynup/dynup/xds/nodes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// adsServer serves ADS: state of the world with the loop below, incremental (delta) with go-control-plane's
// server.
//
// The state-of-the-world loop does what go-control-plane v0.14.0's ordered ADS does (sotw/v3 processADS),
// request by request and callback by callback, with less work per ACK: that server rebuilt the stream's
// subscription (a map of every name the node asked for) on every request, though a node's ACK names the
// same resources as its previous request almost always, and it decoded every request whole, node and all
// (see sotw_request.go). With a fleet ACKing each endpoint change, that was most of dynup's CPU per change.
type adsServer struct {
	ctx       context.Context
	cache     cache.ConfigWatcher
	callbacks serverv3.Callbacks
	delta     delta.Server
	// streams numbers state-of-the-world streams from 1, as go-control-plane does; the delta server
	// numbers its own, and the node tracker keeps the two apart.
	streams atomic.Int64
}

var _ discovery.AggregatedDiscoveryServiceServer = (*adsServer)(nil)

func newADSServer(ctx context.Context, c cache.Cache, callbacks serverv3.Callbacks) *adsServer {
	return &adsServer{ctx: ctx, cache: c, callbacks: callbacks, delta: delta.NewServer(ctx, c, callbacks)}
}

func (s *adsServer) DeltaAggregatedResources(st discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	return s.delta.DeltaStreamHandler(sharedEncodingDeltaStream{st}, resource.AnyType)
}

// sharedEncodingDeltaStream sends a response whose resources the cache shares between streams with their shared
// encoding (groupcache.EncodedDeltaResources), instead of encoding them again for each stream.
type sharedEncodingDeltaStream struct {
	discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer
}

func (d sharedEncodingDeltaStream) Send(r *discovery.DeltaDiscoveryResponse) error {
	if wire := groupcache.EncodedDeltaResources(r.Resources); wire != nil {
		return d.SendMsg(&encodedResponse{resp: r, resources: wire})
	}
	return d.AggregatedDiscoveryService_DeltaAggregatedResourcesServer.Send(r)
}

// sotwStream is one state-of-the-world stream's state, owned by the goroutine that serves it.
type sotwStream struct {
	id      int64
	stream  discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer
	watches map[string]*sotwWatch // by type URL
	nonce   int64
	node    *core.Node // from the first request that had one; requests after may leave it out
}

// sotwWatch is a stream's subscription to one type and the cache's watch for it.
type sotwWatch struct {
	cancel func()
	// sub is handed to the cache by value, as go-control-plane does; the copy shares its maps, and the
	// cache edits the returned-resources map in place (groupcache's returnedEdits says when that is safe).
	sub stream.Subscription
	// names are the resource names of the request sub was made for: a request naming the same ones (an
	// ACK, nearly always) keeps sub as it is.
	names []string
	// nonce is the latest response's for this type, "" until the current watch has answered.
	nonce string
}

func (s *adsServer) StreamAggregatedResources(st discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	sw := &sotwStream{
		id:      s.streams.Add(1),
		stream:  st,
		watches: make(map[string]*sotwWatch, 4),
		node:    &core.Node{},
	}
	defer s.shutdown(sw)
	if s.callbacks != nil {
		if err := s.callbacks.OnStreamOpen(st.Context(), sw.id, resource.AnyType); err != nil {
			return err
		}
	}
	reqs := make(chan *discovery.DiscoveryRequest)
	go s.receive(st, reqs)
	return s.process(sw, reqs)
}

// maxKeptFrame is the largest request buffer a stream keeps for its next request; an ACK with a hundred
// names and the node's metadata takes a few KiB.
const maxKeptFrame = 64 << 10

// receive reads and decodes the stream's requests until it ends, then closes reqs.
func (s *adsServer) receive(st discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer, reqs chan<- *discovery.DiscoveryRequest) {
	defer close(reqs)
	var dec requestDecoder
	var frame requestFrame
	for {
		if err := st.RecvMsg(&frame); err != nil {
			return
		}
		req, err := dec.decode(frame.buf)
		if err != nil {
			return // as when the message could not be unmarshalled in Recv: the stream ends
		}
		if cap(frame.buf) > maxKeptFrame {
			frame.buf = nil // a rare large request's buffer is not kept for the stream's life
		}
		// The stream's goroutine is nearly always waiting for it: hand it over without the three-way
		// select, which costs a lock and a wait-queue entry on each of its channels (selects were a tenth
		// of dynup's CPU at 10,000 streams).
		select {
		case reqs <- req:
			continue
		default:
		}
		select {
		case reqs <- req:
		case <-st.Context().Done():
			return
		case <-s.ctx.Done():
			return
		}
	}
}

// process serves the stream's requests and the cache's responses until either ends. Both on this one
// goroutine, as go-control-plane does: a response its watch made before a request replaced the watch is
// still in the queue when the request is handled, and dropped there. (Handling requests on the receiving
// goroutine instead, under a lock, saved no measurable CPU and let such a response out.)
func (s *adsServer) process(sw *sotwStream, reqs <-chan *discovery.DiscoveryRequest) error {
	// One queue for every type, so responses go out in the order the cache produced them: clusters before
	// endpoints before listeners before routes. Room for one response per type: the cache sends on it
	// holding its lock (the node tracker bounds a stream's types to fit).
	responses := make(chan cache.Response, nodes.MaxTypesPerStream)
	for {
		select {
		case <-s.ctx.Done():
			return nil
		case r := <-responses:
			if err := s.send(sw, r); err != nil {
				return status.Error(codes.Unavailable, err.Error())
			}
		case req, ok := <-reqs:
			if !ok {
				return nil
			}
			if err := s.request(sw, req, responses); err != nil {
				return err
			}
		}
	}
}

// request handles one request as go-control-plane's ordered ADS does.
func (s *adsServer) request(sw *sotwStream, req *discovery.DiscoveryRequest, responses chan cache.Response) error {
	if req == nil {
		return status.Error(codes.Unavailable, "empty request")
	}
	if req.Node != nil {
		sw.node = req.Node
	} else {
		req.Node = sw.node
	}
	typeURL := req.TypeUrl
	if typeURL == "" {
		return status.Error(codes.InvalidArgument, "type URL is required for ADS")
	}
	if s.callbacks != nil {
		if err := s.callbacks.OnStreamRequest(sw.id, req); err != nil {
			return err
		}
	}
	w := sw.watches[typeURL]
	if w == nil {
		// Legacy wildcard allowed, go-control-plane's default: an empty list means every resource until
		// the node names some.
		w = &sotwWatch{sub: stream.NewSotwSubscription(req.ResourceNames, true), names: req.ResourceNames}
		sw.watches[typeURL] = w
	} else {
		if w.nonce != "" && req.ResponseNonce != w.nonce {
			// An answer to an older response, ignored as the protocol says:
			// https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol#resource-updates
			return nil
		}
		// Closed first so the cache does not answer it while its subscription changes; what it already
		// answered for this type is dropped below, the new watch answers from the same state.
		w.cancel()
		if err := s.sendAllExcept(sw, typeURL, responses); err != nil {
			return err
		}
		if !sameNames(w.names, req.ResourceNames) {
			w.sub.SetResourceSubscription(req.ResourceNames)
			w.names = req.ResourceNames
		}
		// With the same names, setting them again would change nothing: the subscription's names are
		// these, and it holds no returned resource outside them (each response the stream took was built
		// for them), so there is nothing to prune.
	}
	w.nonce = ""
	w.cancel = nil
	cancel, err := s.cache.CreateWatch(req, w.sub, responses)
	if err != nil {
		delete(sw.watches, typeURL)
		return err
	}
	w.cancel = cancel
	return nil
}

// sendAllExcept sends the queued responses of other types and drops those of typeURL, whose watch is being
// replaced.
func (s *adsServer) sendAllExcept(sw *sotwStream, typeURL string, responses chan cache.Response) error {
	for {
		select {
		case r := <-responses:
			if r.GetRequest().GetTypeUrl() != typeURL {
				if err := s.send(sw, r); err != nil {
					return err
				}
			}
		default:
			return nil
		}
	}
}

// send stamps a response with the stream's next nonce, records what it returns, and sends it.
func (s *adsServer) send(sw *sotwStream, r cache.Response) error {
	if r == nil {
		return errors.New("missing response")
	}
	out, err := r.GetDiscoveryResponse()
	if err != nil {
		return err
	}
	sw.nonce++
	out.Nonce = strconv.FormatInt(sw.nonce, 10)
	typeURL := r.GetRequest().GetTypeUrl()
	w := sw.watches[typeURL]
	if w == nil {
		return fmt.Errorf("no current watch for %s", typeURL)
	}
	w.sub.SetReturnedResources(r.GetReturnedResources())
	w.nonce = out.Nonce
	if s.callbacks != nil {
		s.callbacks.OnStreamResponse(r.GetContext(), sw.id, r.GetRequest(), out)
	}
	if pre, ok := r.(encodedResources); ok {
		if wire := pre.EncodedResources(); wire != nil {
			return sw.stream.SendMsg(&encodedResponse{resp: out, resources: wire})
		}
	}
	return sw.stream.Send(out)
}

// encodedResources is a response whose resources come encoded as well (groupcache, for a whole set).
type encodedResources interface{ EncodedResources() []byte }

// shutdown closes the stream's watches and reports it closed.
func (s *adsServer) shutdown(sw *sotwStream) {
	for _, w := range sw.watches {
		if w.cancel != nil {
			w.cancel()
		}
	}
	if s.callbacks != nil {
		s.callbacks.OnStreamClosed(sw.id, sw.node)
	}
}

// sameNames reports whether two requests name the same resources in the same order. The decoder hands an
// unchanged list over as the same slice, which the first check catches.
func sameNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
