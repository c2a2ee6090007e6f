# Planner and reactive runs against the mock, with a scripted plan per test
# (llm_scripts/planner.json, chosen by a word of the task):
#   - a good plan: forced through AgentPlan by structured output, streamed
#     as json_partial, the prompt lists the tools; optimized (identical
#     calls merged, steps that cannot reach the output dropped, parallel
#     levels) and materialized; plans keeps version 1 (initial);
#   - a schema violation, a cycle, an unknown tool, a tool the owner may
#     not use and database.query: each sent back with the problems, then a
#     good plan; a hopeless planner fails past max_replans;
#   - SQL-looking text in a tool input is data (bound), never run;
#   - a failing step triggers a replan that keeps finished outputs;
#   - reactive: a replan_when condition, a budget, a stall;
#   - budgets bind fixed runs too.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $mock = mock_start('planner.json');
my $node = llm_start(llm_node('planner'));
register_model($node, 'default', 'openai', $mock, { model => 'mock-planner', prices => { input_per_mtok => 1, output_per_mtok => 1 } });
sql($node, q{ALTER SYSTEM SET agentorch.default_model = 'default'; SELECT pg_reload_conf();});
sql($node, q{
CREATE TABLE public.sales (region text, amount numeric);
INSERT INTO public.sales VALUES ('north', 10), ('north', 5), ('south', 7);
CREATE FUNCTION public.always_fails(jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the tool broke'; END $$;
CREATE TABLE public.tool_calls (region text);
CREATE FUNCTION public.count_call(r text) RETURNS text LANGUAGE sql AS $$ INSERT INTO public.tool_calls VALUES (r) RETURNING r $$;
SELECT agentorch.register_tool('sales.by_region', 'sql',
  '{"sql": "SELECT public.count_call($1) AS region, sum(amount) AS total FROM public.sales WHERE region = $1", "params": ["region"], "description": "total sales of one region"}',
  '{"type": "object", "required": ["region"], "properties": {"region": {"type": "string"}}}');
SELECT agentorch.register_tool('sales.regions', 'sql', '{"sql": "SELECT DISTINCT region FROM public.sales ORDER BY region"}');
SELECT agentorch.register_tool('always.fails', 'function', '{"function": "public.always_fails"}');
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
GRANT USAGE ON SCHEMA agentorch TO alice, bob;
});
sql_as($node, 'bob', q{SELECT agentorch.register_tool('secret.tool', 'sql', '{"sql": "SELECT 1 AS one"}')});

sub start_planner
{
	my ($prompt, $orch, $opts, $role) = @_;
	my $q = 'SELECT agentorch.start(' . json_in({ prompt => $prompt }) . ", '" . ($orch // 'planner') . "', NULL, "
	  . json_in($opts // {}) . ')';
	return $role ? sql_as($node, $role, $q) : sql($node, $q);
}

sub plans { my ($run) = @_; return jdec(sql($node, "SELECT COALESCE(json_agg(p ORDER BY version), '[]') FROM agentorch.plans p WHERE run_id = $run")); }
sub steps_of { my ($run) = @_; return { map { split /\|/, $_, 2 } split /\n/, sql($node, "SELECT step_id, status FROM agentorch.steps WHERE run_id = $run") }; }
sub planner_requests { return [ grep { ($_->{body}{messages}[0]{content} // '') =~ /planner of agentorch/ } @{ mock_requests($mock) } ]; }
sub last_user { my ($req) = @_; return $req->{body}{messages}[-1]{content}; }

# --- a good plan
mock_reset($mock);
my $run = start_planner('case-good: compare the north and south regions');
is(wait_status($node, $run), 'succeeded', 'good plan: the run succeeded');
my $out = jdec(run_field($node, $run, 'output'));
is($out->{north}[0]{total}, 15, 'good plan: output template rendered from the tool step');
like($out->{comparison}, qr/step-compare north \[\{"total": ?15, ?"region": ?"north"\}\] south/, 'good plan: the llm step got the merged call\'s output');
my $p = plans($run);
is(scalar @$p, 1, 'good plan: one plans row');
is($p->[0]{version}, 1, 'good plan: version 1');
is($p->[0]{reason}, 'initial', 'good plan: reason initial');
my %actions = map { ($_->{action} . ':' . ($_->{step} // join(',', @{ $_->{steps} || [] }))) => $_ } @{ $p->[0]{diff}{optimizer} };
ok($actions{'merged:north_again'} && $actions{'merged:north_again'}{into} eq 'north', 'optimizer: identical calls made once');
ok($actions{'dropped:unused'}, 'optimizer: a step that cannot reach the output is dropped');
ok($actions{'dependency_added:compare'}, 'optimizer: a reference becomes a dependency');
ok($actions{'parallel:north,south'}, 'optimizer: independent steps run in parallel');
my $st = steps_of($run);
ok(!exists $st->{north_again} && !exists $st->{unused}, 'optimizer: merged and dropped steps are not materialized');
is(sql($node, "SELECT count(*) FROM public.tool_calls WHERE region = 'north'"), '1', 'the identical tool call ran once');
my $reqs = planner_requests();
is(scalar @$reqs, 1, 'good plan: one planner request');
is($reqs->[0]{body}{response_format}{type}, 'json_schema', 'planner request forces structured output');
is_deeply([ sort @{ $reqs->[0]{body}{response_format}{json_schema}{schema}{required} } ], [ 'goal', 'steps' ], 'through the AgentPlan schema');
like(last_user($reqs->[0]), qr/- sales\.by_region \(sql tool\): total sales of one region\n  input schema: \{.*"region"/, 'prompt: tools with descriptions and input schemas');
unlike(last_user($reqs->[0]), qr/secret\.tool/,
	'prompt: not even a superuser\'s planner is offered an ordinary role\'s tool it did not name (its code would run as the superuser)');
ok(sql($node, "SELECT count(*) FROM agentorch.chunks WHERE run_id = $run AND step_id = 'planner\@1' AND kind = 'json_partial'") > 0,
	'the plan streamed as json_partial chunks');
ok(sql($node, "SELECT count(*) FROM agentorch.events WHERE run_id = $run AND kind = 'plan_created'") == 1, 'plan_created event');

# --- a schema violation is sent back (after the runner's own repair turn)
mock_reset($mock);
$run = start_planner('case-schema: answer');
is(wait_status($node, $run), 'succeeded', 'schema violation: then a good plan, the run succeeded');
$st = steps_of($run);
is($st->{'planner@1'}, 'failed', 'schema violation: the first planner step failed');
is($st->{'planner@2'}, 'succeeded', 'schema violation: a second planner step');
$reqs = planner_requests();
like(last_user($reqs->[-1]), qr/the planner did not answer a usable plan/, 'schema violation: the problem is sent back');
is(plans($run)->[0]{reason}, 'initial', 'schema violation: the applied plan is version 1, initial');

# --- unknown tool, a tool of another role, database.query, a cycle: sent back, then good
mock_reset($mock);
$run = start_planner('case-checks: answer', 'planner', {}, 'alice');
is(wait_status($node, $run), 'succeeded', 'checks: the corrected plan ran');
$reqs = planner_requests();
is(scalar @$reqs, 2, 'checks: two planner requests');
unlike(last_user($reqs->[0]), qr/secret\.tool|sales\.by_region/, 'checks: tools alice may not use are not offered');
like(last_user($reqs->[0]), qr/\(none: use llm steps only\)/, 'checks: alice may use no tool');
my $second = last_user($reqs->[1]);
like($second, qr/no\.such\.tool" is not available/, 'checks: unknown tool named');
like($second, qr/secret\.tool" is not available/, 'checks: a tool the owner may not use is refused');
like($second, qr/database\.query cannot be used in a plan/, 'checks: database.query refused');
like($second, qr/cycle: b -> c -> b/, 'checks: the cycle named');
like($second, qr/"tool":"no\.such\.tool"/, 'checks: the rejected plan is shown to the model');
is(sql($node, "SELECT count(*) FROM agentorch.events WHERE run_id = $run AND kind = 'plan_rejected'"), '1', 'checks: plan_rejected event');
is(sql_as($node, 'alice', "SELECT output->>'answer' FROM agentorch.runs WHERE id = $run"), 'step-answer done', 'checks: alice reads her output');

# --- granted tools: a superuser's tool granted to alice is offered; an
# ordinary role's (bob's) granted to her is not, until she names it
sql($node, "SELECT agentorch.grant_tool('sales.by_region', 'alice'); GRANT SELECT ON public.sales TO alice; GRANT INSERT ON public.tool_calls TO alice");
sql_as($node, 'bob', "SELECT agentorch.grant_tool('secret.tool', 'alice')");
mock_reset($mock);
$run = start_planner('case-good: compare the north and south regions', 'planner', {}, 'alice');
is(wait_status($node, $run), 'succeeded', "granted: alice's plan with the superuser's granted tool ran") or diag(run_field($node, $run, 'error::text'));
$reqs = planner_requests();
like(last_user($reqs->[0]), qr/- sales\.by_region \(sql tool\)/, "granted: a superuser's tool granted to alice is offered");
unlike(last_user($reqs->[0]), qr/secret\.tool/, "granted: an ordinary role's tool granted to alice is not offered unnamed");
mock_reset($mock);
$run = start_planner('case-good: compare the north and south regions', 'planner', { tools => [ 'sales.by_region', 'secret.tool' ] }, 'alice');
is(wait_status($node, $run), 'succeeded', 'granted: named in options.tools');
like(last_user(planner_requests()->[0]), qr/secret\.tool/, "granted: bob's tool is offered when alice names it");
sql($node, "SELECT agentorch.revoke_tool('sales.by_region', 'alice'); REVOKE SELECT ON public.sales FROM alice; REVOKE INSERT ON public.tool_calls FROM alice");
sql_as($node, 'bob', "SELECT agentorch.revoke_tool('secret.tool', 'alice')");

# --- past max_replans the run fails with the last problem
mock_reset($mock);
$run = start_planner('case-hopeless', 'planner', { max_replans => 2 });
is(wait_status($node, $run), 'failed', 'hopeless: the run failed');
like(run_field($node, $run, "error->>'message'"), qr/^planning gave up after 2 revisions \(max_replans = 2\): the plan was rejected: \/steps\/0\/tool: tool "no\.such\.tool"/,
	'hopeless: the error names the revisions and the last problem');
is(scalar @{ planner_requests() }, 3, 'hopeless: 1 + 2 planner requests');
is(sql($node, "SELECT count(*) FROM agentorch.plans WHERE run_id = $run"), '0', 'hopeless: no plan was applied');

# --- SQL-looking text in a tool input is a bound value
mock_reset($mock);
$run = start_planner('case-sqltext');
is(wait_status($node, $run), 'succeeded', 'sql text: the run succeeded');
is(sql($node, "SELECT count(*) FROM public.sales"), '3', 'sql text: nothing was dropped');
is(sql($node, "SELECT input->>'region' FROM agentorch.steps WHERE run_id = $run AND step_id = 'lookup'"),
	"north'; DROP TABLE public.sales; --", 'sql text: stored as data');

# --- a failing step triggers a replan that keeps finished outputs
mock_reset($mock);
$run = start_planner('case-error');
is(wait_status($node, $run), 'succeeded', 'error: the revised plan finished the run');
$p = plans($run);
is(scalar @$p, 2, 'error: two plan versions');
is($p->[1]{reason}, 'error', 'error: version 2 has reason error');
is($p->[1]{parent_version}, 1, 'error: parent version 1');
is_deeply($p->[1]{diff}{added}, ['summary'], 'error: diff added');
is_deeply([ sort @{ $p->[1]{diff}{removed} } ], [ 'after', 'boom' ], 'error: diff removed');
is_deeply($p->[1]{diff}{kept}, ['regions'], 'error: diff kept (finished, its output stays)');
$st = steps_of($run);
is($st->{regions}, 'succeeded', 'error: the finished step stays');
is($st->{boom}, 'failed', 'error: the failed step stays failed');
is($st->{after}, 'cancelled', 'error: the pending step was superseded');
is(sql($node, "SELECT attempt FROM agentorch.steps WHERE run_id = $run AND step_id = 'regions'"), '1', 'error: the finished step did not run again');
like(run_field($node, $run, "output->>'summary'"), qr/step-summary of \[\{"region": ?"north"\}/, 'error: the new step used the kept output');
like(last_user(planner_requests()->[1]), qr/step boom failed: .*the tool broke/s, 'error: the replan request carries the error');
like(last_user(planner_requests()->[1]), qr/- regions \(succeeded\): \[\{"region":"north"\}/, 'error: ... and what finished');
is(sql($node, "SELECT count(*) FROM agentorch.events WHERE run_id = $run AND kind = 'plan_modified'"), '1', 'error: plan_modified event');
ok(sql($node, "SELECT count(*) FROM agentorch.chunks WHERE run_id = $run AND kind = 'status' AND data->>'status' = 'replanning'") == 1,
	'error: a status chunk announces the replan');

# --- a failing step in a plan with no revisions left fails the run
mock_reset($mock);
$run = start_planner('case-error', 'planner', { max_replans => 0 });
is(wait_status($node, $run), 'failed', 'error without revisions: the run failed');
like(run_field($node, $run, "error->>'message'"), qr/^planning gave up after 0 revisions \(max_replans = 0\): step boom failed/, 'error without revisions: message');

# --- reactive: a condition
mock_reset($mock);
$run = start_planner('case-condition', 'reactive', { replan_when => ['$.steps.regions.output.size() >= 2'] });
is(wait_status($node, $run), 'succeeded', 'condition: the run succeeded');
$p = plans($run);
is(scalar @$p, 2, 'condition: replanned once');
is($p->[1]{reason}, 'condition', 'condition: reason condition');
$st = steps_of($run);
is($st->{detail}, 'cancelled', 'condition: the pending step was replaced');
is($st->{short}, 'succeeded', 'condition: the new step ran');
my $ev = jdec(sql($node, "SELECT data FROM agentorch.events WHERE run_id = $run AND kind = 'replan_triggered'"));
is($ev->{trigger}, 'condition', 'condition: replan_triggered event names the trigger');
# a condition that does not evaluate to true or false (not a predicate; a
# comparison of incomparable values) does not hold, and says so once
mock_reset($mock);
$run = start_planner('case-condition', 'reactive', { replan_when => [ '$.steps', '$.steps.regions.output[0] * 2 > 1' ] });
is(wait_status($node, $run), 'succeeded', 'conditions that cannot be evaluated: the run succeeded');
is(scalar @{ plans($run) }, 1, 'conditions that cannot be evaluated: no replan');
is(sql($node, "SELECT string_agg(data->>'condition', ' | ' ORDER BY seq) FROM agentorch.events WHERE run_id = $run AND kind = 'condition_failed'"),
	'$.steps | $.steps.regions.output[0] * 2 > 1', 'conditions that cannot be evaluated: one condition_failed event each');
# the same condition in a planner (not reactive) run does nothing
mock_reset($mock);
$run = start_planner('case-condition', 'planner');
is(wait_status($node, $run), 'succeeded', 'planner run: succeeded');
is(scalar @{ plans($run) }, 1, 'planner run: no condition trigger');

# --- reactive: the budget (the next llm step would exceed max_tokens) asks for a cheaper plan
mock_reset($mock);
$run = start_planner('case-budget', 'reactive', { budget => { max_tokens => 100 } });
is(wait_status($node, $run), 'succeeded', 'budget: the cheaper plan finished the run');
$p = plans($run);
is($p->[-1]{reason}, 'budget', 'budget: a revision with reason budget');
$st = steps_of($run);
is($st->{second}, 'cancelled', 'budget: the expensive step did not run');
is($st->{cheap}, 'succeeded', 'budget: the cheap step ran');
# the same as a planner run: the run fails clearly
mock_reset($mock);
$run = start_planner('case-budget', 'planner', { budget => { max_tokens => 100 } });
is(wait_status($node, $run), 'failed', 'budget (planner): the run failed');
like(run_field($node, $run, "error->>'message'"), qr/^token budget exceeded: 1\d\d tokens used, max_tokens 100$/, 'budget (planner): clear error');
is(step_row($node, $run, 'second')->{status}, 'cancelled', 'budget (planner): the step never started');

# --- budgets bind fixed runs too
sql($node, q{SELECT agentorch.register_workflow('two-llm', '{"steps": [{"id": "one", "type": "llm", "prompt": "step-expensive a"}, {"id": "two", "type": "llm", "prompt": "step-expensive b", "depends_on": ["one"]}]}')});
$run = sql($node, q{SELECT agentorch.run_workflow('two-llm', '{}', '{"budget": {"max_tokens": 50}}')});
is(wait_status($node, $run), 'failed', 'fixed budget: the run failed');
like(run_field($node, $run, "error->>'message'"), qr/^token budget exceeded: 100 tokens used, max_tokens 50$/, 'fixed budget: clear error');
is(step_row($node, $run, 'two')->{attempt}, 0, 'fixed budget: the second llm step never started');
# a declared max_tokens that would not fit is refused before the request
sql($node, q{SELECT agentorch.register_workflow('big-llm', '{"steps": [{"id": "one", "type": "llm", "prompt": "step-expensive a", "max_tokens": 500}]}')});
$run = sql($node, q{SELECT agentorch.run_workflow('big-llm', '{}', '{"budget": {"max_tokens": 100}}')});
is(wait_status($node, $run), 'failed', 'declared max_tokens: the run failed');
like(run_field($node, $run, "error->>'message'"), qr/the next llm step may use 500/, 'declared max_tokens: named in the error');

# --- reactive: a stall (no step finished within stall_timeout)
mock_reset($mock);
$run = start_planner('case-stall', 'reactive', { stall_timeout => '1s' });
is(wait_status($node, $run), 'succeeded', 'stall: the run succeeded with a new plan');
$p = plans($run);
is($p->[-1]{reason}, 'stall', 'stall: revision with reason stall');
$st = steps_of($run);
is($st->{slow}, 'cancelled', 'stall: the hanging step was superseded');
is($st->{quick}, 'succeeded', 'stall: the new step ran');

# --- a time budget is a deadline: a run whose slow step outlasts
# budget.max_duration fails with the budget's error, its step cut short
mock_reset($mock);
$run = start_planner('case-stall', 'reactive', { budget => { max_duration => '2 seconds' } });
is(wait_status($node, $run), 'failed', 'time budget: the run failed');
is(run_field($node, $run, "error->>'message'") . '/' . run_field($node, $run, "error->>'sqlstate'"),
	'time budget exceeded: max_duration 2 seconds/54000', 'time budget: the budget\'s error (54000)');
isnt(sql($node, "SELECT status FROM agentorch.steps WHERE run_id = $run AND step_id = 'slow'"), 'succeeded',
	'time budget: the slow step did not run to its end');
is(run_field($node, $run, "deadline = started_at + interval '2 seconds'"), 't', 'time budget: it is the run\'s deadline');

# --- adaptive strategy: after two failures of a model, later llm steps use its first fallback
register_model($node, 'good', 'openai', $mock, { model => 'mock-good' });
register_model($node, 'bad', 'openai', $mock, { model => 'mock-bad', fallback => ['good'] });
mock_reset($mock);
$run = start_planner('case-adaptive', 'reactive', { model => 'bad', planner_model => 'default' });
is(wait_status($node, $run), 'succeeded', 'adaptive: the run succeeded');
my @models = map { $_->{body}{model} } grep { ($_->{body}{messages}[-1]{content} // '') =~ /^step-/ } @{ mock_requests($mock) };
is(scalar(grep { $_ eq 'mock-bad' } @models), 2, 'adaptive: the failing model was asked twice');
is($models[-1], 'mock-good', 'adaptive: the later step went to the fallback');
is(step_row($node, $run, 's2')->{spec}{model}, 'good', 'adaptive: the later step was switched before it started');
$ev = jdec(sql($node, "SELECT data FROM agentorch.events WHERE run_id = $run AND kind = 'model_switched'"));
is_deeply([ $ev->{from}, $ev->{to} ], [ 'bad', 'good' ], 'adaptive: model_switched event');

# --- graph(run_id): every plan version, superseded steps marked
my $err_run = sql($node, "SELECT min(r.id) FROM agentorch.runs r JOIN agentorch.plans p ON p.run_id = r.id AND p.reason = 'error'");
my $g = sql($node, "SELECT agentorch.graph($err_run)");
like($g, qr/planner\@1.*planner\@2/s, 'graph: both planner steps');
like($g, qr/after<br\/>.*<br\/>superseded/, 'graph: the replaced step is marked superseded');
like($g, qr/classDef superseded/, 'graph: superseded has a style');
like(sql($node, "SELECT agentorch.graph($err_run, 'dot')"), qr/-> n\d+/, 'graph: dot edges from the planner steps');

# --- a tool's spec.description is what a model is told (function calling too)
mock_reset($mock);
$run = sql($node, q{SELECT agentorch.start('{"prompt": "step-tooldesc", "tools": ["sales.by_region", "sales.regions"]}', 'simple')});
is(wait_status($node, $run), 'succeeded', 'tool description: the run succeeded');
my ($treq) = grep { ($_->{body}{messages}[-1]{content} // '') eq 'step-tooldesc' } @{ mock_requests($mock) };
my %desc = map { $_->{function}{name} => $_->{function}{description} } @{ $treq->{body}{tools} || [] };
is($desc{'sales_by_region'} // $desc{'sales.by_region'}, 'total sales of one region', 'tool description: from spec.description');
like($desc{'sales_regions'} // $desc{'sales.regions'} // '', qr/^agentorch tool sales\.regions \(sql\)$/, 'tool description: a default without one');

# --- bad options are refused and change nothing
my $before = sql($node, 'SELECT count(*) FROM agentorch.runs');
for my $bad ({ budget => { max_tokens => -1 } }, { budget => { max_money => 1 } }, { replan_when => ['$.$$ broken'] },
	{ max_replans => 1000 }, { stall_timeout => 'soon' }, { planner_model => 'nope' }, { tools => ['database.query'] })
{
	my $r = psql_result($node, 'postgres', undef, 'SELECT agentorch.start(' . json_in({ prompt => 'x' }) . ", 'planner', NULL, " . json_in($bad) . ')');
	isnt($r->{rc}, 0, 'refused: ' . jenc($bad));
}
is(sql($node, 'SELECT count(*) FROM agentorch.runs'), $before, 'refused options created no run');

ok(!crashed($node), 'no server process crashed');
done_testing();
