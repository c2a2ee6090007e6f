# Attacks on planner and reactive runs (review of the planner work):
#   - two plan steps failing together: the first asks for a revision, the
#     second (while that planner step is open) is not lost: it is sent to
#     the planner once the open planner step has finished;
#   - resume() of a planner run whose planning gave up asks the planner
#     again (it used to close the run as succeeded with an empty output);
#   - a stall_timeout or max_duration of zero or less is refused;
#   - plans and events of another role's run are invisible.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $mock = mock_start('planner_attacks.json');
my $node = llm_start(llm_node('planner_attacks', 'agentorch.max_workers = 4'));
register_model($node, 'default', 'openai', $mock, { model => 'mock-planner' });
sql($node, q{ALTER SYSTEM SET agentorch.default_model = 'default'; SELECT pg_reload_conf();});
sql($node, q{
CREATE FUNCTION public.slow_fails(x jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep((x->>'s')::float8); RAISE EXCEPTION 'slow tool % broke', x->>'n'; END $$;
SELECT agentorch.register_tool('slow.fails', 'function', '{"function": "public.slow_fails"}');
CREATE ROLE alice LOGIN;
GRANT USAGE ON SCHEMA agentorch TO alice;
});

sub start_planner
{
	my ($prompt, $orch, $opts) = @_;
	return sql($node, 'SELECT agentorch.start(' . json_in({ prompt => $prompt }) . ", '" . ($orch // 'planner') . "', NULL, "
		  . json_in($opts // {}) . ')');
}
sub wait_for_sql
{
	my ($q) = @_;
	for (1 .. 300) { return 1 if sql($node, $q) eq 't'; select(undef, undef, undef, 0.1); }
	return 0;
}
sub planner_texts
{
	return [ map { $_->{body}{messages}[-1]{content} }
		  grep { ($_->{body}{messages}[0]{content} // '') =~ /planner of agentorch/ } @{ mock_requests($mock) } ];
}

# --- two plan steps fail together: both failures reach a planner
mock_reset($mock);
my $run = start_planner('case-lost: two slow steps');
is(wait_status($node, $run), 'succeeded', 'two failures: the run succeeded');
my $texts = planner_texts();
ok((grep { /step a failed: / } @$texts), 'two failures: the failure of a was sent to a planner');
ok((grep { /step b failed: / } @$texts), 'two failures: the failure of b was sent to a planner');
is(scalar @$texts, 3, 'two failures: the second failure asked for one more revision');
is(sql($node, "SELECT count(*) FROM agentorch.events WHERE run_id = $run AND kind = 'replan_deferred'"), '1',
	'two failures: the second failure was deferred while the planner step was open');
is(sql($node, "SELECT status FROM agentorch.steps WHERE run_id = $run AND step_id = 'fin2'"), 'succeeded',
	'two failures: the last plan ran');

# --- a condition that holds while a planner step is open is not used up
mock_reset($mock);
$run = start_planner('case-condopen: two steps', 'reactive', { replan_when => ['$.steps.b.output == "late answer"'] });
is(wait_status($node, $run), 'succeeded', 'condition while planning: the run succeeded');
is(sql($node, "SELECT string_agg(reason, ',' ORDER BY version) FROM agentorch.plans WHERE run_id = $run"), 'initial,error,condition',
	'condition while planning: the condition asked for a revision after the next plan\'s step');
is(sql($node, "SELECT status FROM agentorch.steps WHERE run_id = $run AND step_id = 'd'"), 'succeeded', 'condition while planning: the revised plan ran');

# --- a kept step waiting for another attempt while the planner is at work:
# a new plan naming it does not pretend to replace it, and a step using its
# output waits for it
mock_reset($mock);
$run = start_planner('case-kept: two steps');
ok(wait_for_sql("SELECT count(*) = 1 FROM agentorch.steps WHERE run_id = $run AND step_id = 'planner\@2' AND status IN ('ready', 'running')")
	  && sql($node, "SELECT status FROM agentorch.steps WHERE run_id = $run AND step_id = 'b'") eq 'running',
	'kept: b runs while the planner revises the plan');
# b's attempt failed and waits for the next one (as _retry_step leaves it)
sql($node, "UPDATE agentorch.steps SET status = 'ready', lease_until = NULL, worker = NULL, "
	  . "not_before = clock_timestamp() + interval '5 s' WHERE run_id = $run AND step_id = 'b'");
is(wait_status($node, $run), 'succeeded', 'kept: the run succeeded');
is(sql($node, qq{SELECT count(*) FROM jsonb_array_elements((SELECT plan->'steps' FROM agentorch.runs WHERE id = $run)) p
  JOIN agentorch.steps s ON s.run_id = $run AND s.step_id = p->>'id'
 WHERE s.plan_version <> (SELECT plan_version FROM agentorch.runs WHERE id = $run) OR s.spec->>'prompt' IS DISTINCT FROM p->>'prompt'}), '0',
	'kept: every step of the current plan is what ran');
is(sql($node, "SELECT depends_on::text FROM agentorch.steps WHERE run_id = $run AND step_id = 'c'"), '{b}', 'kept: c waited for b');
is(sql($node, "SELECT output #>> '{}' FROM agentorch.steps WHERE run_id = $run AND step_id = 'c'"), 'step-c2 late answer done', 'kept: c used b\'s output');

# --- resume() of a run whose planning gave up asks the planner again
mock_reset($mock);
$run = start_planner('case-resume: answer', 'planner', { max_replans => 0 });
is(wait_status($node, $run), 'failed', 'resume: planning gave up');
is(sql($node, "SELECT agentorch.resume($run)"), 't', 'resume: accepted');
is(wait_status($node, $run), 'succeeded', 'resume: the run succeeded');
is(run_field($node, $run, "output->>'answer'"), 'step-answer done', 'resume: with the output of the new plan');
is(sql($node, "SELECT count(*) FROM agentorch.plans WHERE run_id = $run"), '1', 'resume: one plan applied');
is(sql($node, "SELECT string_agg(step_id || '=' || status, ',' ORDER BY ord) FROM agentorch.steps WHERE run_id = $run AND spec ? 'planner'"),
	'planner@1=succeeded,planner@2=succeeded', 'resume: the first planner step stays, a second one asked again');
like(planner_texts()->[-1], qr/the run was resumed after it failed: the plan was rejected/, 'resume: the planner hears why');

# --- a huge stall_timeout does not break the stall check of every run
mock_reset($mock);
my $huge = start_planner('case-huge-stall: slow', 'reactive', { stall_timeout => '100000000 years' });
ok(wait_for_sql("SELECT status = 'running' FROM agentorch.steps WHERE run_id = $huge AND step_id = 'slow'"), 'huge stall: its slow step runs');
$run = start_planner('case-stall: slow', 'reactive', { stall_timeout => '1s' });
is(wait_status($node, $run), 'succeeded', 'huge stall: another reactive run succeeded');
is(sql($node, "SELECT reason FROM agentorch.plans WHERE run_id = $run ORDER BY version DESC LIMIT 1"), 'stall',
	'huge stall: ... after its own stall replan');
is(sql($node, "SELECT status FROM agentorch.steps WHERE run_id = $run AND step_id = 'quick'"), 'succeeded', 'huge stall: ... with the new plan');
unlike(slurp_file($node->logfile), qr/timestamp out of range/, 'huge stall: no recovery error in the log');
sql($node, "SELECT agentorch.cancel($huge)");

# --- a replan_when condition that fails at run time (an unknown $variable
# passes the jsonpath parser) does not stop the run
mock_reset($mock);
$run = start_planner('case-badcond: two steps', 'reactive', { replan_when => ['$.steps.one.output == $nope', '$.steps.one.output.size() > 0'] });
is(wait_status($node, $run), 'succeeded', 'bad condition: the run succeeded');
is(sql($node, "SELECT count(*) FROM agentorch.plans WHERE run_id = $run"), '2', 'bad condition: the next condition still asked for a revision');
like(sql($node, "SELECT data->>'error' FROM agentorch.events WHERE run_id = $run AND kind = 'condition_failed'"), qr/nope/,
	'bad condition: its error is an event');

# --- intervals of zero or less are refused
for my $bad ({ stall_timeout => '0 seconds' }, { stall_timeout => '-1 hour' }, { budget => { max_duration => '0' } },
	{ budget => { max_duration => '-5 minutes' } })
{
	my $r = psql_result($node, 'postgres', undef, 'SELECT agentorch.start(' . json_in({ prompt => 'x' }) . ", 'reactive', NULL, " . json_in($bad) . ')');
	isnt($r->{rc}, 0, 'refused: ' . jenc($bad));
	like($r->{message}, qr/must be a positive interval/, 'refused with the reason: ' . jenc($bad));
}

# --- another role's plans and events are invisible
is(sql_as($node, 'alice', "SELECT count(*) FROM agentorch.plans WHERE run_id = $run"), '0', 'RLS: alice sees no plan of the superuser\'s run');
is(sql_as($node, 'alice', "SELECT count(*) FROM agentorch.events WHERE run_id = $run"), '0', 'RLS: ... nor its events');
is(sql_as($node, 'alice', "SELECT count(*) FROM agentorch.steps WHERE run_id = $run"), '0', 'RLS: ... nor its steps (planner prompts)');

ok(!crashed($node), 'no server process crashed');
done_testing();
