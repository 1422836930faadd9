package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// requestTimeout bounds one request on either side; a request that takes longer counts as failed.
const requestTimeout = 5 * time.Second

// side is one system under comparison, seen from its clients: which instance answered each request and when,
// and how many requests failed.
type side struct {
	name string
	send func(ctx context.Context) (id string, err error)

	counting         atomic.Bool // only requests while the changes run are counted
	total, failed    atomic.Int64
	mu               sync.Mutex
	first, last      map[string]time.Time     // per instance id: first and last answer received
	firstSeen        map[string]chan struct{} // closed at an instance's first answer
	errSamples       map[string]int           // failure messages, counted (a few distinct ones kept)
	errSamplesMaxLen int
}

func newSide(name string, send func(ctx context.Context) (string, error)) *side {
	return &side{name: name, send: send, first: map[string]time.Time{}, last: map[string]time.Time{},
		firstSeen: map[string]chan struct{}{}, errSamples: map[string]int{}, errSamplesMaxLen: 5}
}

// seen is closed once a request has been answered by instance id.
func (s *side) seen(id string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seenLocked(id)
}

func (s *side) seenLocked(id string) chan struct{} {
	ch, ok := s.firstSeen[id]
	if !ok {
		ch = make(chan struct{})
		s.firstSeen[id] = ch
	}
	return ch
}

// firstAndLast are the times of the first and last answers from instance id (zero if none).
func (s *side) firstAndLast(id string) (time.Time, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first[id], s.last[id]
}

func (s *side) record(id string, err error, at time.Time) {
	counting := s.counting.Load()
	if counting {
		s.total.Add(1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if counting {
			s.failed.Add(1)
			msg := err.Error()
			if _, ok := s.errSamples[msg]; ok || len(s.errSamples) < s.errSamplesMaxLen {
				s.errSamples[msg]++
			}
		}
		return
	}
	if _, ok := s.first[id]; !ok {
		s.first[id] = at
		close(s.seenLocked(id))
	}
	s.last[id] = at
}

// run sends requests from n clients, each one every interval (or as soon as the previous one is answered,
// if that takes longer), until ctx ends.
func (s *side) run(ctx context.Context, n int, interval time.Duration, wg *sync.WaitGroup) {
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				rctx, cancel := context.WithTimeout(ctx, requestTimeout)
				id, err := s.send(rctx)
				cancel()
				if ctx.Err() != nil {
					return // stopping: a request cut short is not a failure of the system
				}
				s.record(id, err, time.Now())
			}
		}()
	}
}

// httpSender sends GET / through nginx on keep-alive connections, as a client of the proxy would. Go's
// transport retries an idempotent request once when a reused connection turns out to be closed (what an
// old nginx worker does to idle connections after a reload); what fails after that is a failure.
func httpSender(addr string, conns int) func(ctx context.Context) (string, error) {
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: conns, DisableCompression: true}}
	url := "http://" + addr + "/"
	return func(ctx context.Context) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return "", err
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode/100 != 2 {
			return "", fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return resp.Header.Get("X-Backend"), nil
	}
}

// grpcSender sends one UnaryCall on the xDS channel; the backend answers with its id.
func grpcSender(cc *grpc.ClientConn) func(ctx context.Context) (string, error) {
	client := testgrpc.NewTestServiceClient(cc)
	return func(ctx context.Context) (string, error) {
		resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
		if err != nil {
			return "", err
		}
		return resp.GetHostname(), nil
	}
}
