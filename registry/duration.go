package registry

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Duration is a time.Duration that reads Slardar's plain numbers as seconds ("fail_timeout": 30), Go
// duration strings ("10s") and dyups' nginx-style numbers with units ("10s", "500ms"); it writes a Go string.
type Duration struct{ time.Duration }

// Seconds returns a Duration of n seconds.
func Seconds(n float64) *Duration { return &Duration{time.Duration(n * float64(time.Second))} }

// ParseDuration reads "30", "30s", "1.5", "500ms" or "1m".
func ParseDuration(s string) (Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return checkDuration(time.Duration(f * float64(time.Second)))
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return Duration{}, fmt.Errorf("%q is not a duration (use seconds, e.g. 10, or 10s, 500ms)", s)
	}
	return checkDuration(d)
}

func checkDuration(d time.Duration) (Duration, error) {
	if d < 0 {
		return Duration{}, fmt.Errorf("duration %s is negative", d)
	}
	return Duration{d}, nil
}

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var n float64
	if err := json.Unmarshal(b, &n); err == nil {
		v, err := checkDuration(time.Duration(n * float64(time.Second)))
		*d = v
		return err
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a number of seconds or a string like \"10s\"")
	}
	v, err := ParseDuration(s)
	*d = v
	return err
}

// Or returns d's value, or def when d is nil.
func (d *Duration) Or(def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.Duration
}
