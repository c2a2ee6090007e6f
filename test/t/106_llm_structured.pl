# LLM layer: structured output (response_schema), both providers.
#   - a valid reply: the output is the JSON value, and the json_partial
#     chunks concatenate to the JSON text;
#   - invalid once, then valid: one repair turn (a {"repair": true} status
#     chunk, the problems told to the model), then success;
#   - invalid twice: the step fails, the schema problems in the error detail;
#   - broken JSON once: repaired the same way;
#   - a non-object schema is sent wrapped and the output unwrapped.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $mock = mock_start('structured.json');
my $node = llm_start(llm_node('llm_structured'));
register_model($node, 'gpt', 'openai', $mock, { model => 'mock-gpt' });
register_model($node, 'claude', 'anthropic', $mock, { model => 'mock-claude' });

my $schema = {
	type => 'object',
	required => [ 'city', 'temp' ],
	properties => { city => { type => 'string' }, temp => { type => 'number' } },
	additionalProperties => JSON::PP::false
};

sub run_case
{
	my ($model, $case, $sch) = @_;
	return start_run($node,
		{ prompt => 'What is the weather?', system => "case-$case", response_schema => $sch // $schema },
		{ model => $model });
}

sub partial_text
{
	my ($chunks) = @_;
	return join('', map { $_->{content} } grep { $_->{kind} eq 'json_partial' } @$chunks);
}

for my $p ([ 'gpt', 'openai' ], [ 'claude', 'anthropic' ])
{
	my ($model, $label) = @$p;
	mock_reset($mock);

	# ------------------------------------------------ valid
	my $run = run_case($model, 'valid');
	is(wait_status($node, $run), 'succeeded', "$label valid: succeeded");
	is(run_field($node, $run, 'output::text'), '{"city": "Paris", "temp": 21.5}', "$label valid: the output is the JSON value");
	my $chunks = chunk_list($node, $run);
	my $pt = partial_text($chunks);
	is($pt, '{"city":"Paris","temp":21.5}', "$label valid: json_partial chunks concatenate to the JSON text");
	is(sql($node, "SELECT " . json_in($pt) . " = output FROM agentorch.runs WHERE id = $run"), 't',
		"$label valid: the streamed JSON text is the output");
	is(scalar(grep { $_->{kind} eq 'token' } @$chunks), 0, "$label valid: no token chunks for structured output");
	my ($req) = grep { $_->{rule} eq 'valid' } @{ mock_requests($mock) };
	if ($label eq 'openai')
	{
		is($req->{body}{response_format}{type}, 'json_schema', 'openai valid: response_format json_schema');
		is(jenc($req->{body}{response_format}{json_schema}{schema}{required}), '["city","temp"]',
			'openai valid: the schema is sent');
	}
	else
	{
		is(jenc($req->{body}{tool_choice}), '{"name":"structured_output","type":"tool"}',
			'anthropic valid: the structured-output tool is forced');
		my ($tool) = grep { $_->{name} eq 'structured_output' } @{ $req->{body}{tools} };
		is(jenc($tool->{input_schema}{required}), '["city","temp"]', 'anthropic valid: the schema is its input_schema');
	}

	# ------------------------------------------------ invalid once, then valid
	$run = run_case($model, 'repair-once');
	is(wait_status($node, $run), 'succeeded', "$label repair: succeeded");
	is(run_field($node, $run, 'output::text'), '{"city": "Rome", "temp": 18}', "$label repair: the repaired value");
	$chunks = chunk_list($node, $run);
	my @repair = grep { $_->{kind} eq 'status' && $_->{data} && $_->{data}{repair} } @$chunks;
	is(scalar @repair, 1, "$label repair: one {\"repair\": true} status chunk");
	my @before = grep { $_->{kind} eq 'json_partial' && $_->{seq} < $repair[0]{seq} } @$chunks;
	my @after = grep { $_->{kind} eq 'json_partial' && $_->{seq} > $repair[0]{seq} } @$chunks;
	is(join('', map { $_->{content} } @before), '{"city":42}', "$label repair: the invalid JSON streamed before the repair chunk");
	is(join('', map { $_->{content} } @after), '{"city":"Rome","temp":18}', "$label repair: the valid JSON after it");
	my @reqs = grep { $_->{rule} eq 'repair_once' } @{ mock_requests($mock) };
	is(scalar @reqs, 2, "$label repair: two requests (one repair turn)");
	my $last_user = '';
	for my $m (@{ $reqs[1]{body}{messages} })
	{
		next unless $m->{role} eq 'user';
		$last_user = ref $m->{content} ? join('', map { $_->{text} // jenc($_) } @{ $m->{content} }) : $m->{content};
	}
	like($last_user, qr{missing required property "temp"}, "$label repair: the repair turn tells the model what is missing");
	like($last_user, qr{/city: expected type string}, "$label repair: ... and what is wrong");
	is(step_row($node, $run, 'main')->{attempt}, 1, "$label repair: still the first attempt");

	# ------------------------------------------------ invalid twice
	$run = run_case($model, 'invalid-twice');
	is(wait_status($node, $run), 'failed', "$label invalid twice: failed");
	my $s = step_row($node, $run, 'main');
	like($s->{error}{message}, qr/structured output does not match response_schema/, "$label invalid twice: the message");
	like($s->{error}{detail} // '', qr{^/temp: .*}m, "$label invalid twice: the detail lists the wrong type of /temp");
	like($s->{error}{detail} // '', qr{city}, "$label invalid twice: ... the missing city");
	like($s->{error}{detail} // '', qr{extra}, "$label invalid twice: ... and the extra member");
	is(scalar(grep { $_->{rule} eq 'invalid_twice' } @{ mock_requests($mock) }), 2,
		"$label invalid twice: exactly one repair turn, no more");
	is(scalar(grep { $_->{kind} eq 'status' && $_->{data} && $_->{data}{repair} } @{ chunk_list($node, $run) }), 1,
		"$label invalid twice: one repair chunk");

	# ------------------------------------------------ broken JSON once
	$run = run_case($model, 'broken-json');
	is(wait_status($node, $run), 'succeeded', "$label broken JSON once: succeeded");
	is(run_field($node, $run, 'output::text'), '{"city": "Oslo", "temp": -3}', "$label broken JSON once: the repaired value");

	# ------------------------------------------------ a top-level array schema
	$run = run_case($model, 'array', { type => 'array', items => { type => 'integer' } });
	is(wait_status($node, $run), 'succeeded', "$label array schema: succeeded");
	is(run_field($node, $run, 'output::text'), '[3, 1, 2]', "$label array schema: the output is the unwrapped array");
}

$node->stop;
done_testing();
