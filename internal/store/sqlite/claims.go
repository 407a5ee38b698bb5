package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/slipway-ml/slipway/internal/job"
	"github.com/slipway-ml/slipway/internal/store"
)

// The claims of one queue that share a transaction are taken in one pass
// (see Store.together), as the move batches are: every agent's long poll or
// refill would otherwise cost its own savepoint, claim and event insert.
// One statement picks the jobs that all of them take, in the queue's
// order and within its max_running, exactly as the claims run one after
// the other would; Go hands the first n1 to the first claim, the next n2
// to the second, and so on; one statement writes each job's lease, named
// after its own claim's agent and token, and the events of every claim and
// move of the transaction are recorded together.

// claimReq is a ClaimN on its way through the writer.
type claimReq struct {
	req store.ClaimRequest
	n   int
	// Set by the writer: the jobs the claim took, in the order of its
	// passes, and whether it ran with other claims.
	rows []claimedRow
	ran  bool
}

// pickSQL lists the seqs of the next ?2 queued jobs of queue ?1 that
// claims may take, in the order they take them: claimSQL's choice, as a
// read.
var pickSQL = nextQueued("?1", "?2")

// leaseColumns are what a claim writes alike in every job it takes.
const leaseColumns = `state = '` + string(job.Claimed) + `', lease_token = lease_token + 1`

// leasesSQL gives each picked job, by seq, the lease of its claim, and
// returns the jobs as claimed. A row is (seq, agent, token_id,
// expires_at, reason, updated_at).
var leasesSQL = newRowsSQL(`UPDATE jobs SET `+leaseColumns+`, lease_agent = ?2, lease_token_id = ?3,
	lease_expires_at = ?4, reason = ?5, updated_at = ?6 WHERE seq = ?1 AND state = 'queued' RETURNING seq, `+jobColumns,
	`UPDATE jobs SET `+leaseColumns+`, lease_agent = v.column2, lease_token_id = v.column3,
	lease_expires_at = v.column4, reason = v.column5, updated_at = v.column6
FROM (VALUES `, 6, `) v WHERE jobs.seq = v.column1 AND jobs.state = 'queued' RETURNING seq, `+jobColumns)

// claimAll takes the jobs of claims, queue by queue in the order of
// their first claim, and returns the rows of their events for eventsSQL,
// claims in order.
func claimAll(ctx context.Context, tx *wtx, claims []*writeReq) ([]any, error) {
	t := now()
	var queues []string
	byQueue := map[string][]*claimReq{}
	for _, req := range claims {
		c := req.claim
		q := c.req.Queues[0]
		if _, ok := byQueue[q]; !ok {
			queues = append(queues, q)
		}
		byQueue[q] = append(byQueue[q], c)
	}
	for _, q := range queues {
		if err := claimQueue(ctx, tx, q, byQueue[q], t); err != nil {
			return nil, fmt.Errorf("claiming jobs of queue %s: %w", q, err)
		}
	}
	var events []any
	for _, req := range claims {
		c := req.claim
		for _, r := range c.rows {
			events = append(events, r.ID, toDB(r.UpdatedAt), string(job.Queued), string(r.State), r.Reason, c.req.Agent, r.Attempt)
		}
	}
	return events, nil
}

// claimQueue takes the jobs that cs, claims of queue q in order, would
// take one after the other at time t, and gives each claim its own.
func claimQueue(ctx context.Context, tx *wtx, q string, cs []*claimReq, t time.Time) error {
	total := 0
	for _, c := range cs {
		total += c.n
	}
	seqs, err := pick(ctx, tx, q, total)
	if err != nil {
		return err
	}
	if len(seqs) == 0 {
		return nil
	}
	owner := make(map[int64]int, len(seqs)) // seq → index in cs
	args := make([]any, 0, len(seqs)*leasesSQL.width)
	k, taken := 0, 0
	for _, seq := range seqs {
		for taken == cs[k].n {
			k, taken = k+1, 0
		}
		c := cs[k]
		owner[seq] = k
		taken++
		args = append(args, seq, c.req.Agent, c.req.TokenID, toDB(t.Add(c.req.TTL)), "claimed by agent "+c.req.Agent, toDB(t))
	}
	got := make(map[int64]claimedRow, len(seqs))
	err = leasesSQL.query(ctx, tx, args, func(r row, seq int64) { got[seq] = claimedRow{row: r, seq: seq} })
	if err != nil {
		return err
	}
	if len(got) != len(seqs) {
		return fmt.Errorf("claimed %d of the %d jobs picked", len(got), len(seqs))
	}
	for _, seq := range seqs {
		c := cs[owner[seq]]
		c.rows = append(c.rows, got[seq])
	}
	return nil
}

// pick runs pickSQL.
func pick(ctx context.Context, tx *wtx, q string, n int) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, pickSQL, q, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var seqs []int64
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			return nil, err
		}
		seqs = append(seqs, seq)
	}
	return seqs, rows.Err()
}
