package luafilters

import (
	"sort"
	"strings"
)

// closestName returns the method name a typo most likely meant ("respnd" -> "respond",
// "getheader" -> ... nothing), or "" when nothing is close enough to be a useful suggestion.
func closestName[V any](name string, candidates map[string]V) string {
	if len(name) > 64 { // no method name is that long; do not spend time on it
		return ""
	}
	names := make([]string, 0, len(candidates))
	for n := range candidates {
		names = append(names, n)
	}
	sort.Strings(names) // deterministic choice between equally close names
	for _, n := range names {
		if strings.EqualFold(n, name) {
			return n
		}
	}
	maxDist := 1
	if len(name) >= 5 {
		maxDist = 2
	}
	best, bestDist := "", maxDist+1
	for _, n := range names {
		if d := editDistance(strings.ToLower(name), strings.ToLower(n)); d < bestDist {
			best, bestDist = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
