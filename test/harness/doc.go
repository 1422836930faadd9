// Package harness runs real parts for end-to-end tests: the dynup binary as a process, gRPC backends that
// say who they are, and gRPC-Go xDS clients (a real xDS consumer) pointed at dynup.
//
// Everything binds to 127.0.0.1 only, on ports the kernel picks.
package harness
