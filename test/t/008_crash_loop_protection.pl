# Crash-loop protection. A transactional step that crashes the server
# leaves nothing committed of its attempt, so without protection the
# restarted executor would run it again forever. Executors count a crash
# against a step before running it while they are "careful" (after every
# start) and fail a step with AO_MAX_CRASHES (3) recorded crashes instead
# of running it again.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AgentorchTest;

my $node = ao_node('crashloop');
$node->start;
ao_setup_tools($node, 'postgres');

# A function tool that crashes the backend running it: SIGKILL of itself
# (the postmaster then reinitialises, as after any backend crash). Each
# attempt leaves a line in the server log, which survives the crash.
$node->safe_psql('postgres', q{
CREATE FUNCTION public.t_boom(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RAISE LOG 'agentorch-test: boom attempt in pid %', pg_backend_pid();
    EXECUTE format('COPY (SELECT 1) TO PROGRAM %L', 'kill -9 ' || pg_backend_pid());
    RETURN '{}';
END $$;
SELECT agentorch.register_tool('t.boom', 'function', '{"function": "public.t_boom"}');
});
ao_register($node, 'postgres', 'boom', q{{"steps": [
  {"id": "boom", "type": "tool", "tool": "t.boom"}]}});
ao_register($node, 'postgres', 'one', q{{"steps": [
  {"id": "rec", "type": "tool", "tool": "t.record", "input": {"tag": "${input.tag}", "step": "rec"}}]}});

# --- a real crash loop, next to an innocent run
my $log_offset = -s $node->logfile;
# Both runs commit together; the first crash may cut this session off
# before it reads the answer, so the ids are looked up afterwards.
$node->psql('postgres', q{SELECT agentorch.run_workflow('boom'), agentorch.run_workflow('one', '{"tag": "innocent"}')});
ok($node->poll_query_until('postgres', q{SELECT count(*) = 2 FROM agentorch.runs}), 'both runs were created');
my ($boom, $innocent) = split /\|/, ao_query_retry($node, 'postgres', q{
SELECT b.id || '|' || i.id FROM agentorch.runs b, agentorch.runs i
 WHERE b.workflow_name = 'boom' AND i.workflow_name = 'one'});

is(ao_wait_run($node, 'postgres', $boom), 'failed', 'the crashing run ends failed');
like($node->safe_psql('postgres', "SELECT error->>'message' FROM agentorch.steps WHERE run_id = $boom"),
	qr/stopped the executor repeatedly/, 'its step failed as a crash loop');
is($node->safe_psql('postgres', "SELECT status FROM agentorch.runs WHERE id = $boom"), 'failed',
	'the run failed');
my $log = slurp_file($node->logfile, $log_offset);
my $attempts = () = $log =~ /agentorch-test: boom attempt/g;
my $restarts = () = $log =~ /all server processes terminated; reinitializing/g;
note "boom attempts: $attempts, server reinitialisations: $restarts";
ok($attempts >= 1 && $attempts <= 3, "the crashing step ran at most 3 times ($attempts)");
is($restarts, $attempts, 'each attempt crashed the server once');

is(ao_wait_run($node, 'postgres', $innocent), 'succeeded', 'the innocent run next to it succeeded')
  or diag $node->safe_psql('postgres', 'SELECT run_id, step_id, status, attempt, crashes, error FROM agentorch.steps');
is($node->safe_psql('postgres', q{SELECT count(*) FROM effects WHERE tag = 'innocent'}), '1',
	'its step took effect once');
is($node->safe_psql('postgres', "SELECT crashes FROM agentorch.steps WHERE run_id = $innocent"), '0',
	'no crash is left counted against it');
ao_check_seqs($node, 'postgres', "r.id IN ($boom, $innocent)", 'after the crash loop');

# The server settles: the executors are back and stay up.
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 2 FROM pg_stat_activity WHERE backend_type = 'agentorch executor'}),
	'the executors run again');
my $after = $node->safe_psql('postgres', q{SELECT agentorch.run_workflow('one', '{"tag": "later"}')});
is(ao_wait_run($node, 'postgres', $after), 'succeeded', 'later runs succeed');

# --- recorded crashes seen by freshly started executors: a database whose
# executors start only when the transaction that creates the extension,
# the runs and the counters commits, so they are careful when they see it.
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
my ($three, $two) = split /\n/, $node->safe_psql('fresh', q{
BEGIN;
CREATE EXTENSION agentorch;
CREATE TABLE public.effects (tag text NOT NULL, step text NOT NULL);
CREATE FUNCTION public.t_record(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.effects (tag, step) VALUES (input->>'tag', input->>'step');
    RETURN '{}';
END $$;
SELECT agentorch.register_tool('t.record', 'function', '{"function": "public.t_record"}') \gset
SELECT agentorch.register_workflow('one', '{"steps": [{"id": "rec", "type": "tool", "tool": "t.record", "input": {"tag": "${input.tag}", "step": "rec"}}]}') \gset
SELECT agentorch.run_workflow('one', '{"tag": "three"}');
SELECT agentorch.run_workflow('one', '{"tag": "two"}');
UPDATE agentorch.steps s SET crashes = CASE r.input->>'tag' WHEN 'three' THEN 3 ELSE 2 END
  FROM agentorch.runs r WHERE r.id = s.run_id;
COMMIT;
});
is(ao_wait_run($node, 'fresh', $three), 'failed', 'a step with 3 recorded crashes fails');
like($node->safe_psql('fresh', "SELECT error->>'message' FROM agentorch.steps WHERE run_id = $three"),
	qr/stopped the executor repeatedly/, 'as a crash loop');
is($node->safe_psql('fresh', q{SELECT count(*) FROM effects WHERE tag = 'three'}), '0',
	'without running again');
is(ao_wait_run($node, 'fresh', $two), 'succeeded', 'a step with 2 recorded crashes runs once more');
is($node->safe_psql('fresh', q{SELECT count(*) FROM effects WHERE tag = 'two'}), '1', 'and takes effect');
is($node->safe_psql('fresh', "SELECT crashes FROM agentorch.steps WHERE run_id = $two"), '0',
	'its crash counter is reset by the completion');

$node->stop;
done_testing();
