// Package compose checks the demo's docker-compose.yml and the project Dockerfile without a Docker engine
// (none runs where the tests run): that everything they reference exists in the repository, that images
// are pinned, that nothing is published beyond loopback, that the Envoy bootstrap is valid and points at
// the dynup service, and that the build command in the Dockerfile is the one the docs give.
package compose
