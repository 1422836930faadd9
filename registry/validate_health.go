package registry

import (
	"fmt"
	"slices"
	"strings"
)

var checkTypes = []string{"tcp", "http", "grpc", "redis"}
var checkers = []string{"envoy", "dynup", "both"}

func (h *HealthCheck) validate() error {
	if h == nil {
		return nil
	}
	if h.Type != "" && !slices.Contains(checkTypes, h.Type) {
		return fieldErr("health_check.type", "%q is not one of %s", h.Type, strings.Join(checkTypes, ", "))
	}
	if h.Checker != "" && !slices.Contains(checkers, h.Checker) {
		return fieldErr("health_check.checker", "%q is not one of %s", h.Checker, strings.Join(checkers, ", "))
	}
	if h.HealthyThreshold < 0 || h.UnhealthyThreshold < 0 {
		return fieldErr("health_check", "thresholds must not be negative")
	}
	if h.Interval != nil && h.Interval.Duration == 0 {
		return fieldErr("health_check.interval", "must be positive")
	}
	if h.HTTP != nil {
		for i, r := range h.HTTP.ExpectedStatuses {
			if r.Start < 100 || r.End > 600 || r.Start >= r.End {
				return fieldErr(fmt.Sprintf("health_check.http.expected_statuses[%d]", i), "[%d, %d) is not a range within [100, 600)", r.Start, r.End)
			}
		}
		for i, c := range h.HTTP.BadStatuses {
			if c < 100 || c > 599 {
				return fieldErr(fmt.Sprintf("health_check.http.bad_statuses[%d]", i), "%d is not an HTTP status", c)
			}
		}
	}
	return nil
}

func (p *PassiveHealth) validate() error {
	if p != nil && p.MaxFails != nil && *p.MaxFails < 0 {
		return fieldErr("passive.max_fails", "must not be negative")
	}
	return nil
}
