// wirecheck: a client built from the Go original's response types, run against our
// nodes by tests/integration/test_go_wire.py.
//
// The types below are the original's (internal/store/types, internal/api, and the
// decode types of internal/e2e/cluster_test.go), with its JSON tags; they are
// written from its field tables, in our own code.  encoding/json decodes as the
// original's clients do: unknown fields are ignored, and a value of the wrong JSON
// type (a fraction into an int64, a number into a string) is an error.
//
//	wirecheck client <base URL> <webhook body file> <id of a job that ran>
//	wirecheck cluster <base URL> <base URL> <base URL>
//
// Each check prints "PASS <name>" or "FAIL <name>: <why>"; the exit status is 1 if
// any failed.  Only the standard library: it builds offline with `go build`.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// --- the original's types (internal/store/types) ---------------------------------

type Job struct {
	ID         string                 `json:"id"`
	Type       string                 `json:"type"`
	Timestamp  *int64                 `json:"timestamp,omitempty"`
	CronExpr   string                 `json:"cron_expression,omitempty"`
	LastDate   *int64                 `json:"last_date,omitempty"`
	CreatedAt  int64                  `json:"created_at"`
	WebhookURL string                 `json:"webhook_url,omitempty"`
	Payload    map[string]interface{} `json:"payload,omitempty"`
}

type CreateJobRequest struct {
	ID         string                 `json:"id,omitempty"`
	Type       string                 `json:"type"`
	Timestamp  string                 `json:"timestamp,omitempty"`
	CronExpr   string                 `json:"cron_expression,omitempty"`
	LastDate   string                 `json:"last_date,omitempty"`
	WebhookURL string                 `json:"webhook_url,omitempty"`
	Payload    map[string]interface{} `json:"payload,omitempty"`
}

type ExecutionAttempt struct {
	AttemptNum   int    `json:"attempt_num"`
	StartTime    int64  `json:"start_time"`
	EndTime      int64  `json:"end_time,omitempty"`
	NodeID       string `json:"node_id"`
	Status       string `json:"status"`
	HTTPStatus   int    `json:"http_status,omitempty"`
	ResponseTime int64  `json:"response_time_ms,omitempty"`
	ErrorMessage string `json:"error_message,omitempty"`
	ErrorType    string `json:"error_type,omitempty"`
}

type JobExecutionState struct {
	JobID              string             `json:"job_id"`
	Status             string             `json:"status"`
	AttemptCount       int                `json:"attempt_count"`
	CreatedAt          int64              `json:"created_at"`
	FirstAttemptAt     int64              `json:"first_attempt_at,omitempty"`
	LastAttemptAt      int64              `json:"last_attempt_at,omitempty"`
	CompletedAt        int64              `json:"completed_at,omitempty"`
	CancelledAt        int64              `json:"cancelled_at,omitempty"`
	CancellationReason string             `json:"cancellation_reason,omitempty"`
	ExecutingNodeID    string             `json:"executing_node_id,omitempty"`
	Attempts           []ExecutionAttempt `json:"attempts"`
}

// The body its executor posts: a map, so these keys (sorted when it sends them).
type WebhookBody struct {
	Data      map[string]interface{} `json:"data"`
	JobID     string                 `json:"job_id"`
	Timestamp int64                  `json:"timestamp"`
	Type      string                 `json:"type"`
}

// --- the original's types (internal/api and what its handlers build) -------------

type MemoryUsage struct {
	CurrentBytes       int64   `json:"current_bytes"`
	LimitBytes         int64   `json:"limit_bytes"`
	AvailableBytes     int64   `json:"available_bytes"`
	UtilizationPercent float64 `json:"utilization_percent"`
}

type JobStats struct {
	Count     int64 `json:"count"`
	Limit     int64 `json:"limit"`
	Available int64 `json:"available"`
}

type ExecutionStats struct {
	Pending        int64   `json:"pending"`
	InProgress     int64   `json:"in_progress"`
	Completed      int64   `json:"completed"`
	Failed         int64   `json:"failed"`
	Cancelled      int64   `json:"cancelled"`
	Timeout        int64   `json:"timeout"`
	Total          int64   `json:"total"`
	LastExecutedAt int64   `json:"last_executed_at,omitempty"`
	FailureRate    float64 `json:"failure_rate"`
}

type HealthResponse struct {
	Status    string          `json:"status"`
	Role      string          `json:"role"`
	Leader    string          `json:"leader,omitempty"`
	NodeID    string          `json:"node_id"`
	Memory    *MemoryUsage    `json:"memory,omitempty"`
	Jobs      *JobStats       `json:"jobs,omitempty"`
	Execution *ExecutionStats `json:"execution,omitempty"`
}

type ClusterDebugResponse struct {
	NodeID    string              `json:"node_id"`
	IsLeader  bool                `json:"is_leader"`
	Leader    string              `json:"leader"`
	RaftState string              `json:"raft_state"`
	Servers   []map[string]string `json:"servers"`
	JobCount  int                 `json:"job_count"`
}

type ExecutionsResponse struct { // a map[string]interface{} in the original
	Attempts []ExecutionAttempt `json:"attempts"`
	JobID    string             `json:"job_id"`
}

type ListResponse struct { // a map[string]interface{} in the original
	Jobs  []JobExecutionState `json:"jobs"`
	Total int                 `json:"total"`
}

type CancelResponse struct { // a map[string]interface{} in the original
	CancelledAt int64  `json:"cancelled_at"`
	JobID       string `json:"job_id"`
	Message     string `json:"message,omitempty"`
	Status      string `json:"status"`
}

// --- the decode types of internal/e2e/cluster_test.go ----------------------------

type e2eHealth struct {
	Status string `json:"status"`
	Role   string `json:"role"`
	Leader string `json:"leader,omitempty"`
	NodeID string `json:"node_id"`
}

type e2eClusterDebug struct {
	NodeID    string              `json:"node_id"`
	IsLeader  bool                `json:"is_leader"`
	Leader    string              `json:"leader"`
	RaftState string              `json:"raft_state"`
	Servers   []map[string]string `json:"servers"`
	JobCount  int                 `json:"job_count"`
}

// --- plumbing --------------------------------------------------------------------

var failed = false

func report(name string, err error) {
	if err != nil {
		failed = true
		fmt.Printf("FAIL %s: %v\n", name, err)
		return
	}
	fmt.Printf("PASS %s\n", name)
}

var client = &http.Client{Timeout: 10 * time.Second}

// call sends a request and decodes a JSON answer into out (when out is not nil).
func call(method, url string, body interface{}, out interface{}) (int, error) {
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, reader)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decoding %s %s: %v (body %.300s)", method, url, err, raw)
		}
	}
	return resp.StatusCode, nil
}

func expect(status, want int, err error) error {
	if err != nil {
		return err
	}
	if status != want {
		return fmt.Errorf("HTTP %d, want %d", status, want)
	}
	return nil
}

func checkAttempts(attempts []ExecutionAttempt) error {
	if len(attempts) == 0 {
		return fmt.Errorf("no attempts")
	}
	a := attempts[len(attempts)-1]
	if a.AttemptNum < 1 || a.StartTime <= 0 || a.EndTime < a.StartTime || a.NodeID == "" {
		return fmt.Errorf("attempt not filled in: %+v", a)
	}
	if a.Status != "completed" || a.HTTPStatus != 200 {
		return fmt.Errorf("attempt did not complete: %+v", a)
	}
	return nil
}

// --- wirecheck client --------------------------------------------------------------

func runClient(base, webhookFile, ranID string) {
	var created Job
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	request := CreateJobRequest{Type: "unico", Timestamp: future, Payload: map[string]interface{}{"k": "v"}}
	status, err := call("POST", base+"/jobs", request, &created)
	err = expect(status, 200, err)
	if err == nil && (created.ID == "" || created.Timestamp == nil || created.CreatedAt <= 0) {
		err = fmt.Errorf("job not filled in: %+v", created)
	}
	report("POST /jobs", err)

	var job Job
	status, err = call("GET", base+"/jobs/"+created.ID, nil, &job)
	err = expect(status, 200, err)
	if err == nil && (job.ID != created.ID || job.Timestamp == nil || *job.Timestamp != *created.Timestamp) {
		err = fmt.Errorf("not the job created: %+v", job)
	}
	report("GET /jobs/{id}", err)

	var state JobExecutionState
	status, err = call("GET", base+"/jobs/"+ranID+"/status", nil, &state)
	err = expect(status, 200, err)
	if err == nil && (state.JobID != ranID || state.Status != "completed" || state.CompletedAt <= 0) {
		err = fmt.Errorf("state not filled in: %+v", state)
	}
	if err == nil {
		err = checkAttempts(state.Attempts)
	}
	report("GET /jobs/{id}/status", err)

	var executions ExecutionsResponse
	status, err = call("GET", base+"/jobs/"+ranID+"/executions", nil, &executions)
	err = expect(status, 200, err)
	if err == nil && executions.JobID != ranID {
		err = fmt.Errorf("executions of %q", executions.JobID)
	}
	if err == nil {
		err = checkAttempts(executions.Attempts)
	}
	report("GET /jobs/{id}/executions", err)

	var pending ListResponse
	status, err = call("GET", base+"/jobs?status=pending", nil, &pending)
	err = expect(status, 200, err)
	if err == nil && (pending.Total < 1 || len(pending.Jobs) != pending.Total) {
		err = fmt.Errorf("total %d, %d items", pending.Total, len(pending.Jobs))
	}
	for _, item := range pending.Jobs {
		if err == nil && (item.JobID == "" || item.Status != "pending" || item.Attempts == nil) {
			err = fmt.Errorf("item not an execution state: %+v", item)
		}
	}
	report("GET /jobs?status=pending", err)

	var done ListResponse
	status, err = call("GET", base+"/jobs?status=completed", nil, &done)
	err = expect(status, 200, err)
	if err == nil && (len(done.Jobs) != 1 || done.Jobs[0].JobID != ranID) {
		err = fmt.Errorf("completed items: %+v", done.Jobs)
	}
	if err == nil {
		err = checkAttempts(done.Jobs[0].Attempts)
	}
	report("GET /jobs?status=completed", err)

	var cancelled CancelResponse
	reason := map[string]string{"reason": "no longer needed"}
	status, err = call("POST", base+"/jobs/"+created.ID+"/cancel", reason, &cancelled)
	err = expect(status, 200, err)
	if err == nil && (cancelled.JobID != created.ID || cancelled.Status != "cancelled" || cancelled.CancelledAt <= 0) {
		err = fmt.Errorf("cancel answer: %+v", cancelled)
	}
	report("POST /jobs/{id}/cancel", err)

	var after JobExecutionState
	status, err = call("GET", base+"/jobs/"+created.ID+"/status", nil, &after)
	err = expect(status, 200, err)
	if err == nil && (after.Status != "cancelled" || after.CancelledAt != cancelled.CancelledAt || after.Attempts == nil) {
		err = fmt.Errorf("state after cancel: %+v", after)
	}
	report("GET /jobs/{id}/status after cancel", err)

	var health HealthResponse
	status, err = call("GET", base+"/health", nil, &health)
	err = expect(status, 200, err)
	if err == nil && (health.Status != "ok" || health.Role != "leader" || health.NodeID == "") {
		err = fmt.Errorf("health: %+v", health)
	}
	if err == nil && (health.Jobs == nil || health.Execution == nil || health.Memory == nil) {
		err = fmt.Errorf("health without jobs, execution or memory: %+v", health)
	}
	if err == nil && (health.Jobs.Count < 3 || health.Execution.Total != health.Jobs.Count) {
		err = fmt.Errorf("jobs.count %d, execution.total %d", health.Jobs.Count, health.Execution.Total)
	}
	if err == nil && health.Execution.LastExecutedAt < state.Attempts[0].StartTime {
		err = fmt.Errorf("last_executed_at %d before the run", health.Execution.LastExecutedAt)
	}
	report("GET /health", err)

	var cluster ClusterDebugResponse
	status, err = call("GET", base+"/debug/cluster", nil, &cluster)
	err = expect(status, 200, err)
	if err == nil && (!cluster.IsLeader || cluster.RaftState != "Leader" || len(cluster.Servers) != 1) {
		err = fmt.Errorf("cluster: %+v", cluster)
	}
	if err == nil && (cluster.Servers[0]["id"] != cluster.NodeID || cluster.Leader != cluster.Servers[0]["address"]) {
		err = fmt.Errorf("servers %v, leader %q", cluster.Servers, cluster.Leader)
	}
	report("GET /debug/cluster", err)

	raw, err := os.ReadFile(webhookFile)
	var hook WebhookBody
	if err == nil {
		err = json.Unmarshal(raw, &hook)
	}
	if err == nil && (hook.JobID != ranID || hook.Type != "unico" || hook.Timestamp <= 0 || hook.Data["k"] != "fired") {
		err = fmt.Errorf("webhook body: %+v", hook)
	}
	report("webhook body", err)
}

// --- wirecheck cluster: internal/e2e/cluster_test.go's three cluster tests ---------

const poll = 200 * time.Millisecond // the original polls every 3 s; only the pace differs

func findLeaderPod(pods []string) string {
	for _, pod := range pods {
		var h e2eHealth
		status, err := call("GET", pod+"/health", nil, &h)
		if err == nil && status == 200 && h.Role == "leader" {
			return pod
		}
	}
	return ""
}

func within(limit time.Duration, try func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := try()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(poll)
	}
}

func runCluster(pods []string) {
	report("TestClusterHasLeader", within(90*time.Second, func() error {
		if findLeaderPod(pods) == "" {
			return fmt.Errorf("no leader found")
		}
		return nil
	}))

	report("TestAllNodesHealthy", within(60*time.Second, func() error {
		for _, pod := range pods {
			var h e2eHealth
			status, err := call("GET", pod+"/health", nil, &h)
			if err != nil {
				return err
			}
			if status != 200 || (h.Status != "ok" && h.Status != "degraded") {
				return fmt.Errorf("%s: HTTP %d, status %q", pod, status, h.Status)
			}
		}
		return nil
	}))

	report("TestClusterConfigurationHasThreeNodes", within(90*time.Second, func() error {
		leader := findLeaderPod(pods)
		if leader == "" {
			return fmt.Errorf("no leader found")
		}
		var view e2eClusterDebug
		status, err := call("GET", leader+"/debug/cluster", nil, &view)
		if err != nil {
			return err
		}
		if status != 200 || len(view.Servers) < 3 {
			return fmt.Errorf("HTTP %d, %d servers", status, len(view.Servers))
		}
		names := []string{}
		for _, srv := range view.Servers {
			if srv["id"] == "" || srv["address"] == "" {
				return fmt.Errorf("a server without id or address: %v", srv)
			}
			names = append(names, srv["id"]+"@"+srv["address"])
		}
		fmt.Printf("servers: %s (raft_state %s, leader %s)\n", strings.Join(names, ", "), view.RaftState, view.Leader)
		return nil
	}))

	// TestNodeJoinTiming: every pod answers /health, exactly one says leader.
	report("TestNodeJoinTiming", within(90*time.Second, func() error {
		leaders := 0
		for _, pod := range pods {
			var h e2eHealth
			status, err := call("GET", pod+"/health", nil, &h)
			if err != nil || status != 200 {
				return fmt.Errorf("%s: HTTP %d, %v", pod, status, err)
			}
			if h.Role == "leader" {
				leaders++
			}
		}
		if leaders != 1 {
			return fmt.Errorf("%d leaders", leaders)
		}
		return nil
	}))
}

func main() {
	args := os.Args[1:]
	switch {
	case len(args) == 4 && args[0] == "client":
		runClient(args[1], args[2], args[3])
	case len(args) == 4 && args[0] == "cluster":
		runCluster(args[1:])
	default:
		fmt.Fprintln(os.Stderr, "usage: wirecheck client BASE WEBHOOK_FILE RAN_ID | cluster BASE BASE BASE")
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}
