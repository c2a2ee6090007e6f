# Failover: a primary with a synchronous standby runs 100 workflows of
# transactional and llm steps; the primary is stopped (immediate, as in a
# crash) while they run; the standby is promoted and its executors -- which
# never ran during recovery -- finish every run from its last committed
# transition: no transactional effect applied twice, no chunk or event gap.
# Before that, a reader on the hot standby follows a run with follow().
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;
use AgentorchTest;

my $mock = mock_start('simple.json', args => [ '--latency-ms', '1500', '--token-delay-ms', '20' ]);
my @conf = ("shared_preload_libraries = 'agentorch'", "agentorch.lease = '2s'",
	"agentorch.retry_initial_backoff = '50ms'", "agentorch.retry_max_backoff = '200ms'",
	"agentorch.flush_interval = '10ms'", "restart_after_crash = on");
my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', join("\n", @conf, "synchronous_standby_names = 'standby'") . "\n");
$primary->start;
$primary->backup('bk');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'bk', has_streaming => 1);
# follow() is one long statement: without feedback the primary's cleanup
# would cancel it (conflict with recovery)
$standby->append_conf('postgresql.conf', "hot_standby_feedback = on\n");
$standby->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION agentorch');
$primary->poll_query_until('postgres', "SELECT sync_state = 'sync' FROM pg_stat_replication WHERE application_name = 'standby'")
  or die 'the standby is not synchronous';

register_model($primary, 'default', 'openai', $mock, { model => 'mock-failover' });
sql($primary, q{
CREATE TABLE public.effects (run bigint, step text, n int NOT NULL DEFAULT 1, UNIQUE (run, step));
SELECT agentorch.register_tool('effect', 'sql',
  '{"sql": "INSERT INTO public.effects (run, step) VALUES ($1::bigint, $2) ON CONFLICT (run, step) DO UPDATE SET n = public.effects.n + 1 RETURNING n", "params": ["run", "step"]}');
SELECT agentorch.register_workflow('fo', '{"steps": [
  {"id": "first", "type": "tool", "tool": "effect", "input": {"run": "${input.n}", "step": "first"}},
  {"id": "ask", "type": "llm", "model": "default", "prompt": "simple-openai failover ${input.n}", "depends_on": ["first"], "retry": {"max_attempts": 5}},
  {"id": "last", "type": "tool", "tool": "effect", "input": {"run": "${input.n}", "step": "last"}, "depends_on": ["ask"]}]}');
});
is($standby->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'agentorch%'}), '0',
	'no agentorch worker runs on the standby');

# a reader on the hot standby follows a run to its end
my $followed = sql($primary, q{SELECT agentorch.run_workflow('fo', '{"n": 0}')});
my $chunks = $standby->safe_psql('postgres', "SELECT string_agg(kind::text, ',' ORDER BY seq) FROM agentorch.follow($followed, 0, '60s')");
like($chunks, qr/token.*,final$/, 'follow() on the hot standby streams the run to its final chunk');

my @runs = split /\n/, sql($primary, q{SELECT agentorch.run_workflow('fo', jsonb_build_object('n', g)) FROM generate_series(1, 100) g});
is(scalar @runs, 100, '100 runs started');
# stop the primary while llm requests are in flight (their first steps committed)
my $base = mock_get($mock, '/stats')->{streams_started} // 0;
ok(mock_poll($mock, sub { ($_[0]{streams_started} // 0) >= $base + 20 }), 'llm requests of the runs are in flight');
my $done_before = sql($primary, q{SELECT count(*) FROM agentorch.runs WHERE status = 'succeeded' AND workflow_name = 'fo'});
$primary->stop('immediate');
note("primary stopped with $done_before of 101 runs finished");
cmp_ok($done_before, '<', 101, 'the primary stopped while runs were in flight');

$standby->promote;
# the promoted server has no standby of its own yet: it must not wait for one
$standby->safe_psql('postgres', q{ALTER SYSTEM SET synchronous_standby_names = ''; SELECT pg_reload_conf();});
my %status;
$status{ ao_wait_run($standby, 'postgres', $_, '10s') }++ for ($followed, @runs);
is($status{succeeded}, 101, 'every run finished on the promoted standby (' . join(', ', map { "$_: $status{$_}" } sort keys %status) . ')');
is($standby->safe_psql('postgres', q{SELECT count(*) FROM public.effects WHERE n <> 1}), '0', 'no transactional effect was applied twice');
is($standby->safe_psql('postgres', q{SELECT count(*) FROM public.effects}), '202', 'every transactional step took effect once');
ao_check_seqs($standby, 'postgres', "r.workflow_name = 'fo'", 'after failover');
is($standby->safe_psql('postgres', q{SELECT count(*) FROM agentorch.steps s WHERE s.step_id = 'ask'
    AND s.output #>> '{}' <> 'The quick brown fox, run #1, jumps over 2 lazy dogs; naïve café — done!'}), '0',
	'every llm output is whole, never mixed with an interrupted attempt');

$standby->stop;
done_testing();
