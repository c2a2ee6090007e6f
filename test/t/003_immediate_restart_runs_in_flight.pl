# An immediate-mode server stop (no shutdown checkpoint, like a power
# cut) while 20 runs of a 5-step chain are in flight: after the restart
# every run finishes succeeded, every transactional step took effect
# exactly once, and chunk and event seqs stay gap-free.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AgentorchTest;

my $nruns = 20;
my $nsteps = 5;

# Small batches, so some runs commit while others are still running.
my $node = ao_node('restart', 'agentorch.batch_size = 4');
$node->start;
ao_setup_tools($node, 'postgres');

my @steps;
for my $i (1 .. $nsteps)
{
	push @steps,
	  sprintf('{"id": "s%d", "type": "tool", "tool": "t.record_slow", %s'
		  . '"input": {"tag": "${input.tag}", "step": "s%d", "seconds": 0.1}}',
		$i, ($i > 1 ? sprintf('"depends_on": ["s%d"], ', $i - 1) : ''), $i);
}
ao_register($node, 'postgres', 'chain', '{"steps": [' . join(', ', @steps) . ']}');

$node->safe_psql('postgres', qq{
SELECT agentorch.run_workflow('chain', jsonb_build_object('tag', 'r' || i))
FROM generate_series(1, $nruns) i});

# Crash once some work has committed and most of it has not.
ok($node->poll_query_until('postgres', 'SELECT count(*) >= 20 FROM effects'),
	'some steps have committed');
my $done_before = $node->safe_psql('postgres',
	q{SELECT count(*) FROM agentorch.runs WHERE status = 'succeeded'});
$node->stop('immediate');
cmp_ok($done_before, '<', $nruns, "runs were in flight at the crash ($done_before of $nruns finished)");
$node->start;

ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 0 FROM agentorch.runs WHERE status IN ('pending', 'running')}),
	'every run finishes after the restart');
is($node->safe_psql('postgres',
	q{SELECT string_agg(DISTINCT status::text, ',') FROM agentorch.runs}),
	'succeeded', 'every run succeeded');
is($node->safe_psql('postgres', 'SELECT count(*) FROM effects'),
	$nruns * $nsteps, 'one effect per step of every run');
is($node->safe_psql('postgres',
	'SELECT count(*) FROM (SELECT tag, step FROM effects GROUP BY 1, 2 HAVING count(*) <> 1) d'),
	'0', 'no step of any run took effect twice');
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM agentorch.steps WHERE status <> 'succeeded' OR crashes <> 0}),
	'0', 'all steps succeeded with no crash recorded against them');
is($node->safe_psql('postgres', q{
SELECT count(*) FROM (SELECT run_id, step_id FROM agentorch.events WHERE kind = 'step_succeeded'
                      GROUP BY 1, 2 HAVING count(*) <> 1) d}),
	'0', 'exactly one step_succeeded event per step');
is($node->safe_psql('postgres', q{
SELECT count(*) FROM (SELECT run_id FROM agentorch.chunks WHERE kind = 'final'
                      GROUP BY 1 HAVING count(*) = 1) d}),
	$nruns, 'exactly one final chunk per run');
ao_check_seqs($node, 'postgres', 'true', 'after an immediate restart');

$node->stop;
done_testing();
