// Package report turns a run's --stats file (and, optionally, its --killed
// file) into one self-contained HTML page: a timeline with a lane per
// worker (per agent and worker on a cluster), each attempt a bar coloured
// by status, kills and worker restarts marked, each retry linked to the
// attempt before it; a histogram of the attempts' durations; and a
// summary of statuses, attempts and killed tasks.
//
// The page loads nothing: its styles are inline, it has no scripts, and
// its Content-Security-Policy forbids every fetch.
//
// [Render] reads the stats file twice, streaming, and never holds a record
// per task: the first pass finds the time span, the workers and the
// counts; the second draws. Attempts too short to see are added into
// per-lane, per-pixel cells, coloured by the worst status they hold, so
// that a million tasks render in bounded memory and a page of bounded
// size.
package report
