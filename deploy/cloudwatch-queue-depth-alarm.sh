#!/usr/bin/env bash
# A CloudWatch alarm per queue: more than 1000 messages waiting for 5 minutes.
# Usage: deploy/cloudwatch-queue-depth-alarm.sh SNS_TOPIC_ARN [REGION]
# Needs the AWS CLI (aws) and cloudwatch:PutMetricAlarm.
set -euo pipefail
topic="${1:?usage: $0 SNS_TOPIC_ARN [REGION]}"
region="${2:-${AWS_REGION:-us-east-1}}"
for queue in invoice-generation-queue priority-emails-queue; do
  aws cloudwatch put-metric-alarm \
    --region "$region" \
    --alarm-name "postline-${queue}-depth" \
    --alarm-description "More than 1000 e-mails waiting in ${queue}" \
    --namespace AWS/SQS \
    --metric-name ApproximateNumberOfMessagesVisible \
    --dimensions "Name=QueueName,Value=${queue}" \
    --statistic Maximum \
    --period 60 \
    --evaluation-periods 5 \
    --threshold 1000 \
    --comparison-operator GreaterThanThreshold \
    --treat-missing-data notBreaching \
    --alarm-actions "$topic"
  # Anything in a dead-letter queue needs a person.
  aws cloudwatch put-metric-alarm \
    --region "$region" \
    --alarm-name "postline-${queue}-dlq-not-empty" \
    --alarm-description "Dead letters in ${queue}-dlq (postline dlq list)" \
    --namespace AWS/SQS \
    --metric-name ApproximateNumberOfMessagesVisible \
    --dimensions "Name=QueueName,Value=${queue}-dlq" \
    --statistic Maximum \
    --period 300 \
    --evaluation-periods 1 \
    --threshold 0 \
    --comparison-operator GreaterThanThreshold \
    --treat-missing-data notBreaching \
    --alarm-actions "$topic"
done
