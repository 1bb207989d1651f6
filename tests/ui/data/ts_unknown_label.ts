@problemName Bad
@dimensions 2
@equalLength true
@seriesLength 3
@classLabel true walk stand
@data
1,2,3:4,5,6:walk
0.5,0.25,0:1,1,1:stand
1,2,3:4,5,6:run
