# Upgrade path: runs created on agentorch 0.1.0 -- transactional chains and
# streaming llm runs in flight, runs waiting for input -- keep running when
# the server restarts with the new library while the database is still at
# 0.1.0, and through ALTER EXTENSION agentorch UPDATE with runs in flight;
# then every run finishes succeeded with its expected output, every tool
# step took effect once, chunk and event seqs are gap-free, one final chunk
# and one run_succeeded event per run, one step_succeeded event per step.
# Also: CREATE EXTENSION installs the default version, VERSION '0.1.0'
# still installs, and ao_require_schema refuses on 0.1.0 (0A000, with the
# hint to update) and passes once ALTER EXTENSION UPDATE ran, in the same
# transaction too.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;
use AgentorchTest qw(ao_setup_tools ao_register ao_check_seqs ao_poll);

my $OLD = '0.1.0';
my $TEXT_A = 'Answer A streamed across a restart of the server.';
my $TEXT_B = 'Answer B streamed across the update.';

my $mock = mock_start('upgrade.json');
my $node = llm_node('upgrade', 'agentorch.batch_size = 4');
$node->start;

sql($node, "CREATE EXTENSION agentorch VERSION '$OLD'");
is(sql($node, "SELECT extversion FROM pg_extension WHERE extname = 'agentorch'"), $OLD,
	"CREATE EXTENSION agentorch VERSION '$OLD' installs $OLD");
my $NEW = sql($node, "SELECT default_version FROM pg_available_extensions WHERE name = 'agentorch'");
isnt($NEW, $OLD, "the default version ($NEW) is newer than $OLD");
ok(sql($node, "SELECT count(*) FROM pg_extension_update_paths('agentorch') "
	  . "WHERE source = '$OLD' AND target = '$NEW' AND path IS NOT NULL"),
	"an update path leads from $OLD to $NEW");

# the tables and tools of the crash tests (the extension exists already)
ao_setup_tools($node, 'postgres');
register_model($node, 'gpt', 'openai', $mock, { model => 'mock-gpt' });
# ao_require_schema from SQL: the library's entry point, not part of any
# install script (a database at 0.1.0 could not have it otherwise)
sql($node, q{CREATE FUNCTION public.require_schema(int, int, text) RETURNS text
  AS '$libdir/agentorch', 'ao_sql_require_schema' LANGUAGE c STRICT});

my $r = psql_result($node, 'postgres', undef, q{SELECT public.require_schema(0, 2, 'the upgrade test')});
is($r->{sqlstate}, '0A000', 'on 0.1.0 ao_require_schema(0, 2) refuses with 0A000');
is($r->{message}, "the upgrade test needs agentorch 0.2.0 in this database (installed: $OLD)",
	'... naming the feature, the version needed and the version installed');
like($r->{err}, qr/HINT:\s+Run ALTER EXTENSION agentorch UPDATE\./, '... with the hint to update');
is(sql($node, q{SELECT public.require_schema(0, 1, 'x')}), $OLD, 'ao_require_schema(0, 1) passes on 0.1.0');
$r = psql_result($node, 'postgres', undef, q{SELECT agentorch.start('{"prompt": "plan something"}', 'planner')});
is($r->{sqlstate}, '0A000', 'on 0.1.0 a planner run is refused with 0A000');
like($r->{message}, qr/planner orchestration needs agentorch 0\.2\.0 in this database/, '... saying what it needs');
# the selector's default (planner for a task that is not a short question)
# runs a database still at 0.1.0 as before: simple
$r = psql_result($node, 'postgres', undef,
	q{SELECT agentorch.start('{"prompt": "upgrade-default compare the north and south sales and write a short report about them"}', NULL, NULL, '{"model": "gpt"}')});
is($r->{sqlstate}, '', 'on 0.1.0 the selector default (planner) is not refused') or diag($r->{err});
SKIP:
{
	skip 'no run', 3 unless $r->{out} =~ /^\d+$/;
	is(wait_status($node, $r->{out}), 'succeeded', '... the run succeeded');
	is(sql($node, "SELECT orchestration || ' ' || (selection->>'orchestration') FROM agentorch.runs WHERE id = $r->{out}"),
		'simple simple', '... as simple');
	like(sql($node, "SELECT selection->>'reason' FROM agentorch.runs WHERE id = $r->{out}"), qr/; planner runs need agentorch 0\.2\.0 in this database .*: run as simple$/, '... and the selection says why');
}

ao_register($node, 'postgres', 'approval', q{{"steps": [
  {"id": "ask", "type": "user_input", "prompt": "Approve ${input.amount} EUR for ${input.tag}?",
   "schema": {"type": "object", "required": ["approved"],
              "properties": {"approved": {"type": "boolean"}}, "additionalProperties": false}},
  {"id": "decide", "type": "branch", "depends_on": ["ask"],
   "cases": [{"when": "$.steps.ask.output.approved == true", "then": ["approve"]}],
   "else": ["reject"]},
  {"id": "approve", "type": "tool", "tool": "t.record", "input": {"tag": "${input.tag}", "step": "approved"}},
  {"id": "reject", "type": "tool", "tool": "t.record", "input": {"tag": "${input.tag}", "step": "rejected"}}]}});
my $NSTEPS = 4;
ao_register($node, 'postgres', 'chain', '{"steps": [' . join(', ', map {
	sprintf('{"id": "s%d", "type": "tool", "tool": "t.record_slow", %s'
		  . '"input": {"tag": "${input.tag}", "step": "s%d", "seconds": 0.25}}',
		$_, ($_ > 1 ? sprintf('"depends_on": ["s%d"], ', $_ - 1) : ''), $_)
} 1 .. $NSTEPS) . ']}');
ao_register($node, 'postgres', 'draft', q{{"steps": [
  {"id": "draft", "type": "llm", "model": "gpt", "prompt": "upgrade-b draft for ${input.tag}"},
  {"id": "save", "type": "tool", "tool": "t.record", "depends_on": ["draft"],
   "input": {"tag": "${input.tag}", "step": "${draft.output}"}}]}});

# ---------------------------------------------------------------- runs on 0.1.0
my (%approval, %chain, %simple_a, %simple_b, %draft);
$approval{"ap$_"} = start_run($node, { tag => "ap$_", amount => 100 * $_ }, { workflow => 'approval' }) for 1 .. 4;
$chain{"c$_"} = start_run($node, { tag => "c$_" }, { workflow => 'chain' }) for 1 .. 8;
$simple_a{"a$_"} = start_run($node, { prompt => "upgrade-a number $_" }, { model => 'gpt' }) for 1 .. 3;
my $ids = sub { join(', ', map { values %$_ } @_) };

ao_poll($node, 'postgres',
	'SELECT count(*) = 4 FROM agentorch.runs WHERE status = \'waiting\' AND id IN (' . $ids->(\%approval) . ')',
	't', 'the approval runs wait for input');
ao_poll($node, 'postgres', 'SELECT count(*) >= 4 FROM public.effects', 't', 'chain steps have committed');
ok(mock_poll($mock, sub { ($_[0]{by_rule}{before_restart} // 0) >= 1 }), 'an llm run is streaming');

# ---------------------------------------------------------------- restart, still 0.1.0
my $inflight = sql($node, 'SELECT count(*) FROM agentorch.runs WHERE status IN (\'pending\', \'running\') AND id IN ('
	  . $ids->(\%chain, \%simple_a) . ')');
$node->restart;
cmp_ok($inflight, '>', 0, "runs were in flight at the restart ($inflight)");
is(sql($node, "SELECT extversion FROM pg_extension WHERE extname = 'agentorch'"), $OLD,
	'after the restart the database is still at 0.1.0');
ao_poll($node, 'postgres',
	'SELECT count(*) = 0 FROM agentorch.runs WHERE status IN (\'pending\', \'running\') AND id IN ('
	  . $ids->(\%chain, \%simple_a) . ')',
	't', 'runs in flight at the restart finish on 0.1.0 with the new library');
is(sql($node, 'SELECT count(*) FROM agentorch.runs WHERE status = \'waiting\' AND id IN (' . $ids->(\%approval) . ')'),
	'4', 'the approval runs still wait for input');

# ---------------------------------------------------------------- update with runs in flight
$chain{"c$_"} = start_run($node, { tag => "c$_" }, { workflow => 'chain' }) for 9 .. 12;
$simple_b{"b$_"} = start_run($node, { prompt => "upgrade-b number $_" }, { model => 'gpt' }) for 1 .. 3;
$draft{"d$_"} = start_run($node, { tag => "d$_" }, { workflow => 'draft' }) for 1 .. 2;
# the mock answers these after 1.5 s: they are streaming during the update
ok(mock_poll($mock, sub { ($_[0]{by_rule}{across_update} // 0) >= 5 }), 'the new llm runs have sent their requests');
my $at_update = sql($node, 'SELECT count(*) FILTER (WHERE status IN (\'pending\', \'running\')) || \'/\' '
	  . '|| count(*) FILTER (WHERE status = \'waiting\') FROM agentorch.runs WHERE id IN ('
	  . $ids->(\%chain, \%simple_b, \%draft, \%approval) . ");\n"
	  . "ALTER EXTENSION agentorch UPDATE;\n"
	  . "SELECT extversion FROM pg_extension WHERE extname = 'agentorch'");
my ($counts, $version) = split /\n/, $at_update;
my ($running, $waiting) = split m{/}, $counts;
cmp_ok($running, '>', 0, "runs were in flight at ALTER EXTENSION UPDATE ($running)");
is($waiting, '4', 'the approval runs were waiting for input at ALTER EXTENSION UPDATE');
is($version, $NEW, "ALTER EXTENSION agentorch UPDATE moves the database to $NEW");
is(sql($node, q{SELECT public.require_schema(0, 2, 'x')}), $NEW, 'ao_require_schema(0, 2) passes after the update');

for my $tag (sort keys %approval)
{
	my $yes = $tag =~ /[12]$/ ? 'true' : 'false';
	is(sql($node, "SELECT agentorch.submit_input($approval{$tag}, 'ask', '{\"approved\": $yes}')"), 't',
		"$tag: input submitted after the update");
}

# ---------------------------------------------------------------- everything finishes
my %all = (%approval, %chain, %simple_a, %simple_b, %draft);
my @bad = grep { wait_status($node, $all{$_}) ne 'succeeded' } sort keys %all;
is_deeply(\@bad, [], 'every run succeeded (' . scalar(keys %all) . ' runs)');

is(sql($node, q{SELECT count(*) FROM (SELECT tag, step FROM public.effects GROUP BY 1, 2 HAVING count(*) <> 1) d}),
	'0', 'no tool step took effect twice');
is(sql($node, q{SELECT count(*) FROM public.effects WHERE tag LIKE 'c%'}), 12 * $NSTEPS,
	'every chain step took effect');
is(sql($node, q{SELECT string_agg(tag || '=' || step, ',' ORDER BY tag) FROM public.effects WHERE tag LIKE 'ap%'}),
	'ap1=approved,ap2=approved,ap3=rejected,ap4=rejected', 'each approval run took the branch of its answer');
is(sql($node, q{SELECT string_agg(tag || '=' || step, ',' ORDER BY tag) FROM public.effects WHERE tag LIKE 'd%'}),
	"d1=$TEXT_B,d2=$TEXT_B", 'each draft run saved the model\'s answer');
is(sql($node, 'SELECT string_agg(DISTINCT output #>> \'{}\', \'|\') FROM agentorch.runs WHERE id IN ('
	  . $ids->(\%simple_a) . ')'), $TEXT_A, 'the llm runs in flight at the restart have the scripted answer');
is(sql($node, 'SELECT string_agg(DISTINCT output #>> \'{}\', \'|\') FROM agentorch.runs WHERE id IN ('
	  . $ids->(\%simple_b) . ')'), $TEXT_B, 'the llm runs in flight at the update have the scripted answer');
is(sql($node, 'SELECT string_agg(DISTINCT output::text, \'|\') FROM agentorch.runs WHERE id IN ('
	  . $ids->(\%draft) . ')'), qq({"save": {"recorded": "$TEXT_B"}}), 'the draft runs\' output');
is(sql($node, 'SELECT string_agg(DISTINCT output::text, \'|\') FROM agentorch.runs WHERE id IN ('
	  . $ids->(\%chain) . ')'), qq({"s$NSTEPS": {"recorded": "s$NSTEPS"}}), 'the chain runs\' output');
is(sql($node, 'SELECT string_agg(output::text, \'|\' ORDER BY id) FROM agentorch.runs WHERE id IN ('
	  . $ids->(\%approval) . ')'),
	join('|', ('{"approve": {"recorded": "approved"}}') x 2, ('{"reject": {"recorded": "rejected"}}') x 2),
	'the approval runs\' output');

is(sql($node, q{SELECT count(*) FROM agentorch.runs r WHERE (SELECT count(*) FROM agentorch.chunks c
  WHERE c.run_id = r.id AND c.kind = 'final') <> 1}), '0', 'exactly one final chunk per run');
is(sql($node, q{SELECT count(*) FROM agentorch.runs r WHERE
     (SELECT count(*) FROM agentorch.events e WHERE e.run_id = r.id AND e.kind = 'run_started') <> 1
  OR (SELECT count(*) FROM agentorch.events e WHERE e.run_id = r.id AND e.kind = 'run_succeeded') <> 1}),
	'0', 'one run_started and one run_succeeded event per run');
is(sql($node, q{SELECT count(*) FROM agentorch.steps s WHERE
  (SELECT count(*) FROM agentorch.events e WHERE e.run_id = s.run_id AND e.step_id = s.step_id
      AND e.kind = 'step_succeeded') <> (s.status = 'succeeded')::int}),
	'0', 'one step_succeeded event per succeeded step, none for others');
is(sql($node, q{SELECT string_agg(DISTINCT status::text, ',' ORDER BY status::text) FROM agentorch.steps}),
	'skipped,succeeded', 'steps ended succeeded or skipped (the branch not taken)');
ao_check_seqs($node, 'postgres', 'true', 'across the restart and the update');


# planner runs need 0.2.0's state layer: they work after the update
my $planned = sql($node, q{SELECT agentorch.start('{"prompt": "plan something"}', 'planner', NULL, '{"model": "gpt"}')});
is(wait_status($node, $planned), 'succeeded', 'after the update a planner run works');
is(sql($node, "SELECT string_agg(version || ':' || reason, ',') FROM agentorch.plans WHERE run_id = $planned"), '1:initial',
	'... with its plans row');

# ---------------------------------------------------------------- fresh installs
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION agentorch');
is($node->safe_psql('fresh', "SELECT extversion FROM pg_extension WHERE extname = 'agentorch'"), $NEW,
	"CREATE EXTENSION agentorch installs $NEW");
$node->safe_psql('fresh', 'DROP EXTENSION agentorch');
$node->safe_psql('fresh', "CREATE EXTENSION agentorch VERSION '$OLD'");
$node->safe_psql('fresh', q{CREATE FUNCTION public.require_schema(int, int, text) RETURNS text
  AS '$libdir/agentorch', 'ao_sql_require_schema' LANGUAGE c STRICT});
# the version is looked up again after ALTER EXTENSION in the same transaction
is($node->safe_psql('fresh', q{BEGIN;
SELECT public.require_schema(0, 1, 'x');
ALTER EXTENSION agentorch UPDATE;
SELECT public.require_schema(0, 2, 'x');
COMMIT;}), "$OLD\n$NEW", 'ao_require_schema sees ALTER EXTENSION UPDATE in the same transaction');

$node->stop;
done_testing();
